import io

from rdet.utils.progress import Progress, progress


def test_progress_line_counts_and_postfix():
    buf = io.StringIO()
    with Progress(4, "train", stream=buf, log_every=0.0) as bar:
        bar.update(2)
        bar.set_postfix({"loss": 0.5})
    line = bar.line()
    assert "train" in line and "2/4" in line and "50%" in line and "loss=0.5" in line
    assert "2/4" in buf.getvalue()


def test_progress_iterates_everything():
    assert list(progress(range(5), enabled=False)) == [0, 1, 2, 3, 4]


def test_logs_get_whole_lines_and_a_resumed_count():
    buf = io.StringIO()  # not a terminal: one line per refresh, no carriage returns
    bar = Progress(10, "train", stream=buf, log_every=0.0)
    bar.n = 6  # a resumed run
    bar.update()
    bar.set_postfix({"loss": 0.25})
    bar.update()
    bar.close()
    text = buf.getvalue()
    assert "\r" not in text and "8/10" in text and "loss=0.25" in text.splitlines()[-1]
    assert all(line.startswith("train") for line in text.splitlines())
    quiet = io.StringIO()
    with Progress(3, "x", enabled=False, stream=quiet) as off:
        off.update(3)
    assert quiet.getvalue() == ""
