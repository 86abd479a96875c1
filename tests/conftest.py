import signal

import pytest


@pytest.fixture
def sigint(request):
    """SIGINT handled as `request.param` says (default: as in a terminal; a script's background job starts with it
    ignored); put back after."""
    before = signal.signal(signal.SIGINT, getattr(request, 'param', signal.default_int_handler))
    yield signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, before)


@pytest.fixture(autouse=True, scope='session')
def quality_cache(tmp_path_factory):
    "Quality reports cache the teacher's samples in a folder of the test session, not in the user's ~/.cache."
    mp = pytest.MonkeyPatch()
    mp.setenv('BOOT_NB_CACHE', str(tmp_path_factory.mktemp('boot_nb_cache')))
    yield
    mp.undo()
