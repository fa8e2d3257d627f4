"""localdev/concurrency.py: pools of steps on worker threads the process shares."""

import subprocess
import sys
import threading
import time

import pytest

from localdev.concurrency import all_at_once, finished, pool, settled, started


def test_a_pool_runs_at_most_its_limit_at_once_and_all_in_order():
    running, peak, order = [0], [0], []
    guard = threading.Lock()

    def step(i):
        with guard:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            order.append(i)
        time.sleep(0.02)
        with guard:
            running[0] -= 1
        return i * i

    with pool(3) as steps:
        assert all_at_once(steps, [lambda i=i: step(i) for i in range(12)]) == [i * i for i in range(12)]
    assert peak[0] == 3 and order[:3] == [0, 1, 2] and sorted(order) == list(range(12))


def test_the_first_failure_is_raised_once_every_step_has_ended():
    ended = []

    def slow():
        time.sleep(0.2)
        ended.append("slow")

    def boom():
        raise ValueError("boom")

    with pool(2) as steps:
        futures = started(steps, [slow, boom])
        with pytest.raises(ValueError, match="boom"):
            finished(futures)
        assert ended == ["slow"]


def test_the_exit_waits_for_every_step_submitted():
    done = []
    with pool(1) as steps:
        for i in range(3):
            steps.submit(lambda i=i: (time.sleep(0.05), done.append(i)))
    assert done == [0, 1, 2]


def test_steps_that_use_pools_of_their_own_never_wait_on_a_full_one():
    # 8 outer steps (the cap) each waiting on 4 inner ones: with one fixed set of 8 threads this would hang.
    def outer(i):
        with pool(4) as inner:
            return sum(all_at_once(inner, [lambda j=j: (time.sleep(0.01), i * j)[1] for j in range(4)]))

    with pool(8) as steps:
        futures = started(steps, [lambda i=i: outer(i) for i in range(16)])
        settled(futures)
    assert [f.result() for f in futures] == [6 * i for i in range(16)]


IDLE_CHECK = """
import threading, time
from localdev import concurrency
from localdev.concurrency import all_at_once, pool
concurrency.IDLE_SECONDS = 0.3
workers = lambda: [t for t in threading.enumerate() if t.name == "localdev-step"]
made = set()
for _ in range(20):
    with pool(4) as steps:
        all_at_once(steps, [lambda: made.add(threading.get_ident()) for _ in range(4)])
print(len(made), len(workers()))
time.sleep(1.0)
print(len(workers()))
with pool(2) as steps:
    print(all_at_once(steps, [lambda: 1, lambda: 2]), len(workers()))
"""


def test_pools_one_after_another_reuse_the_idle_workers_and_idle_ones_end():
    out = subprocess.run([sys.executable, "-c", IDLE_CHECK], capture_output=True, text=True, check=True).stdout
    busy, idle, again = out.splitlines()
    made, alive = map(int, busy.split())
    assert 1 <= made <= 4 and 1 <= alive <= 4  # 80 steps, at most 4 threads
    assert idle == "0"  # nothing is left behind once idle
    assert again.startswith("[1, 2] ") and int(again.split()[-1]) >= 1


def test_a_forked_child_starts_workers_of_its_own():
    import os

    with pool(2) as steps:
        all_at_once(steps, [lambda: 1, lambda: 2])  # idle workers now wait in this process
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            with pool(2) as steps:
                code = 0 if all_at_once(steps, [lambda: 3, lambda: 4]) == [3, 4] else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + 10
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:  # the child waits for a worker that is not there
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("a pool in a forked child never ran its steps")
    assert os.waitstatus_to_exitcode(done[1]) == 0


def test_the_exit_waits_too_for_steps_that_steps_submitted():
    done = []
    with pool(2) as steps:
        def first():
            time.sleep(0.05)
            steps.submit(lambda: (time.sleep(0.1), done.append("second")))
            done.append("first")
        steps.submit(first)
    assert done == ["first", "second"]


def test_an_idle_worker_keeps_nothing_of_its_last_step():
    import gc
    import weakref

    class Thing:
        pass

    thing = Thing()
    gone = weakref.ref(thing)
    with pool(1) as steps:
        steps.submit(lambda it: it, thing)  # its argument, and its result
    del steps, thing
    for _ in range(50):  # the worker drops it right after the step, a moment after the pool's exit
        gc.collect()
        if gone() is None:
            break
        time.sleep(0.02)
    assert gone() is None
