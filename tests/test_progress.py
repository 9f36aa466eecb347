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
