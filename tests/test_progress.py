import io

from reinitlab.util.progress import Progress


class TTY(io.StringIO):
    def isatty(self):
        return True


ROW = {"round": 1, "epoch": 2, "train_loss": 0.5, "train_acc": 0.8, "val_acc": 0.7, "seconds": 1.0}


def test_terminal_gets_a_redrawn_bar_then_a_line_per_epoch():
    s = TTY()
    p = Progress(total_epochs=4, stream=s)
    p.step(1.5, 1, 3, 2, 2, 0.4321)
    p.epoch(ROW, rounds=3)
    out = s.getvalue()
    assert out.startswith("\r round 1/3 epoch 2/2 [#########") and "loss 0.4321" in out
    assert "\r\x1b[2Kround 1/3 epoch 2: loss 0.5000 train 0.8000 val 0.7000" in out


def test_pipes_get_plain_lines_only():
    s = io.StringIO()
    p = Progress(total_epochs=4, stream=s)
    p.step(1.5, 1, 3, 2, 2, 0.4321)
    p.epoch(ROW, rounds=3)
    assert s.getvalue() == "round 1/3 epoch 2: loss 0.5000 train 0.8000 val 0.7000 (1.0s)\n"


def test_a_loss_function_is_read_at_most_once_a_second_and_never_off_a_terminal(monkeypatch):
    from reinitlab.util import progress
    clock = [100.0]
    monkeypatch.setattr(progress.time, "time", lambda: clock[0])
    reads = []

    def loss():
        reads.append(clock[0])
        return 0.25 * len(reads)

    s = TTY()
    p = Progress(total_epochs=4, stream=s)
    for t in (100.0, 100.3, 100.6, 101.1, 101.2):  # redraws at 0.3 s intervals, the last one too soon
        clock[0] = t
        p.step(1.0, 1, 3, 1, 2, loss)
    assert reads == [100.0, 101.1]
    assert s.getvalue().count("loss 0.2500") == 3 and s.getvalue().count("loss 0.5000") == 1  # last value between reads
    pipe = Progress(total_epochs=4, stream=io.StringIO())
    pipe.step(1.0, 1, 3, 1, 2, loss)
    assert len(reads) == 2
