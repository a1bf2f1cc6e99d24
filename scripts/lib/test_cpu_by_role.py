"""Unit tests of cpu_by_role.py's pure parts (run by scripts/test: python3 -m unittest)."""

import json
import os
import sys
import tempfile
import unittest
from contextlib import redirect_stdout
from io import StringIO

sys.path.insert(0, os.path.dirname(__file__))
import cpu_by_role  # noqa: E402


def diff_of(before, after, rows):
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for name, data in (("before", before), ("after", after)):
            paths.append(os.path.join(d, f"{name}.json"))
            with open(paths[-1], "w", encoding="utf-8") as f:
                json.dump(data, f)
        out = StringIO()
        with redirect_stdout(out):
            cpu_by_role.diff(paths[0], paths[1], str(rows))
        return out.getvalue().splitlines()


class Diff(unittest.TestCase):
    def test_roles_are_summed_sorted_and_divided_by_the_rows(self):
        before = {"1": {"role": "analyzer", "cpu": 1.0}, "2": {"role": "postgres: background", "cpu": 5.0}}
        after = {
            "1": {"role": "analyzer", "cpu": 3.0},
            "2": {"role": "postgres: background", "cpu": 5.5},
            # Started between the snapshots: all its time is the phase's.
            "3": {"role": "postgres: background", "cpu": 0.5},
            "4": {"role": "postgres: analyzer write-back", "cpu": 6.0},
        }
        lines = diff_of(before, after, 1000)
        self.assertEqual([line.split()[1] for line in lines[:3]], ["postgres:", "analyzer", "postgres:"])
        self.assertIn("analyzer write-back", lines[0])
        self.assertRegex(lines[0], r" 6\.00 s +6000\.0 µs a row +66\.7 %$")
        self.assertRegex(lines[1], r"analyzer +2\.00 s +2000\.0 µs a row +22\.2 %$")
        self.assertRegex(lines[2], r"background +1\.00 s +1000\.0 µs a row +11\.1 %$")
        self.assertRegex(lines[3], r"total +9\.00 s +9000\.0 µs a row$")

    def test_a_counter_that_went_back_counts_as_nothing(self):
        # A pid reused by a new process between the snapshots reads lower than before.
        lines = diff_of({"7": {"role": "broker", "cpu": 9.0}}, {"7": {"role": "broker", "cpu": 2.0}}, 10)
        self.assertRegex(lines[0], r"broker +0\.00 s +0\.0 µs a row +0\.0 %$")
        self.assertRegex(lines[-1], r"total +0\.00 s")

    def test_a_process_reads_its_own_cpu_from_proc(self):
        own, children = cpu_by_role.times(os.getpid())
        self.assertGreaterEqual(own, 0.0)
        self.assertGreaterEqual(children, 0.0)


if __name__ == "__main__":
    unittest.main()
