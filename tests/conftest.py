import signal

import pytest


@pytest.fixture
def sigint(request):
    "SIGINT handled as `request.param` says (default: as in a terminal; a script's background job starts with it ignored); put back after."
    before = signal.signal(signal.SIGINT, getattr(request, 'param', signal.default_int_handler))
    yield signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, before)
