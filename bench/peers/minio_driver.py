"""Run minio-py's functional tests (tests/functional/tests.py of its sdist) one by one, each to its end.

    python minio_driver.py TESTS_PY [NAME ...]      # run by minio's own venv, in a scratch directory

Upstream's main() stops at the first failure, so one failure would hide every later outcome. This calls that
same main() (its own list, order, arguments and files, with MINT_MODE=full) with its per-test wrapper made
to record a failure and go on, and, given NAMEs, to leave out the other tests. Each test prints upstream's
JSON line (name, status PASS/FAIL/NA, message); the caller reads them.
"""

import importlib.util
import sys


def main() -> None:
    path, wanted = sys.argv[1], set(sys.argv[2:])
    spec = importlib.util.spec_from_file_location("minio_functional_tests", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    upstream = mod._call_test

    def call_test(func, *args, **kwargs):
        if wanted and func.__name__ not in wanted:
            return
        try:
            upstream(func, *args, **kwargs)
        except mod.TestFailed:  # recorded by upstream's JSON line already
            pass

    mod._call_test = call_test
    mod.main()


if __name__ == "__main__":
    main()
