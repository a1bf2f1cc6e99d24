"""Unit tests of checkpoints_during.py (run by scripts/test: python3 -m unittest)."""

import os
import sys
import tempfile
import unittest
from contextlib import redirect_stdout
from io import StringIO

sys.path.insert(0, os.path.dirname(__file__))
import checkpoints_during as cd  # noqa: E402

LOG = """\
2026-12-04 10:00:00.000 UTC [100] LOG:  checkpoint starting: time
2026-12-04 10:00:05.500 UTC [100] LOG:  checkpoint complete: wrote 10 buffers (0.1%); write=4.0 s
2026-12-04 10:00:30.000 UTC [200] LOG:  connection received: host=127.0.0.1
2026-12-04 10:01:00 UTC [100] LOG:  checkpoint starting: wal
2026-12-04 10:01:40.250 UTC [100] LOG:  checkpoint complete: wrote 900 buffers (5.5%)
2026-12-04 10:02:00.000 UTC [100] LOG:  checkpoint starting: immediate force wait
"""


def at(stamp):
    return cd.seconds(stamp)


class Checkpoints(unittest.TestCase):
    def test_runs_pair_start_and_end_and_keep_what_started_them(self):
        runs = cd.checkpoints(LOG.splitlines(keepends=True))
        self.assertEqual(
            runs,
            [
                (at("2026-12-04 10:00:00.000"), at("2026-12-04 10:00:05.500"), "time"),
                (at("2026-12-04 10:01:00"), at("2026-12-04 10:01:40.250"), "wal"),
                (at("2026-12-04 10:02:00.000"), None, "immediate"),
            ],
        )

    def test_only_checkpoints_overlapping_the_window_are_shown(self):
        runs = cd.checkpoints(LOG.splitlines())
        start = at("2026-12-04 10:01:30")
        end = at("2026-12-04 10:02:30")
        self.assertEqual(
            cd.during(runs, start, end),
            "checkpoint (wal) from -30 s to +10 s; checkpoint (immediate) from +30 s to still running",
        )

    def test_a_window_between_checkpoints_has_none(self):
        runs = cd.checkpoints(LOG.splitlines())
        window = (at("2026-12-04 10:00:10"), at("2026-12-04 10:00:50"))
        self.assertEqual(cd.during(runs, *window), "no checkpoint")

    def test_a_missing_log_is_reported_not_raised(self):
        out = StringIO()
        with redirect_stdout(out):
            cd.main(["checkpoints_during.py", "/nonexistent/postgres.log", "0", "1"])
        self.assertTrue(out.getvalue().startswith("(no PostgreSQL log:"), out.getvalue())

    def test_the_command_reads_the_log_file(self):
        with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as f:
            f.write(LOG)
        try:
            out = StringIO()
            with redirect_stdout(out):
                start, end = at("2026-12-04 10:00:01.5"), at("2026-12-04 10:00:02")
                cd.main(["checkpoints_during.py", f.name, str(start), str(end)])
            self.assertEqual(out.getvalue().strip(), "checkpoint (time) from -2 s to +4 s")
        finally:
            os.unlink(f.name)


if __name__ == "__main__":
    unittest.main()
