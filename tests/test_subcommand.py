"""The subcommands' shared prologue: a stop signal that Python swallows is raised again, never lost."""

from __future__ import annotations

import os
import signal

import pytest

from app.subcommand import SignalsRaise


class Stopped(BaseException):
    pass


class SignalledWhileCollected:
    """Sends SIGTERM from __del__, where Python prints and ignores whatever the handler raises."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # bytecode to run: the handler runs between instructions, here
            pass


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowing itself
def test_a_swallowed_signal_is_raised_at_the_next_checkpoint_and_marked() -> None:
    with SignalsRaise(Stopped) as signals:
        SignalledWhileCollected()  # collected at once: the signal arrives inside __del__
        assert signals.received == ["SIGTERM"]
        with pytest.raises(Stopped, match="SIGTERM"):
            signals.checkpoint()
        document = {"completed": True}
        signals.mark(document)
        assert document == {"completed": False, "interrupted": "SIGTERM"}
    assert signal.getsignal(signal.SIGTERM) != signals._handle  # the old handler is back


def test_only_the_first_signal_raises_so_cleanup_is_not_cut_short() -> None:
    with SignalsRaise(Stopped) as signals:
        with pytest.raises(Stopped):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
        os.kill(os.getpid(), signal.SIGTERM)  # during "cleanup": recorded, not raised
        for _ in range(1000):
            pass
        assert signals.received == ["SIGINT", "SIGTERM"]
        document: dict = {"interrupted": "SIGINT"}
        signals.mark(document)
        assert document == {"interrupted": "SIGINT"}  # an interruption the work saw stays as it said
