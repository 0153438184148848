"""Gunicorn helpers of pydeploy.django_stack.gunicorn, installed outside the app's releases.

gunicorn.conf.py imports this file (`sys.path.append(<lib dir>)`); the role runs it with the
release's interpreter to check a configuration before it goes live:

    python pydeploy_gunicorn.py --check /etc/gunicorn/app.conf.py

Gunicorn imports it once, in the master: a new version of this file takes effect at the next
restart (the role restarts the service when it changes), never at a reload.

release_dir(): the release directory for `chdir`, first on sys.path at every start and reload.

ready_hooks(): reload without a stall. On HUP Gunicorn starts the new workers and retires the
old ones at once, while the new ones are still importing the app; requests then wait for an
import (Django: seconds). The hooks keep the old workers serving until every new worker has
loaded the app (at most `timeout` seconds, or until one of them dies), then let Gunicorn retire
them as usual. While they do, the new workers load the app a few at a time (half the CPUs this
process may run on, at least one), not all at once: the old workers keep the other CPUs, and
requests do not queue behind a burst of imports. A stop (systemctl stop or restart) that arrives
meanwhile ends the wait at once, and the master logs how each wait ended.
"""
import fcntl
import os
import queue
import runpy
import signal
import sys
import time

POLL = 0.05
# The release directories this process's configuration named (release_dir), in the master across
# reloads: this module is imported once there.
_RELEASE_DIRS = []


def release_dir(path, sys_path=None):
    """The real directory of the release `path` (a `current` link) names now, for `chdir`, after taking
    every release directory named before out of sys.path (and this one, wherever it is).

    At a reload Gunicorn puts `chdir` first on sys.path only when it is not on it already; a release
    switched back to (a rollback) is there from its earlier start or reload, behind the release it
    replaces, whose modules the new workers would then import. Out of sys.path, it goes first again."""
    sys_path = sys.path if sys_path is None else sys_path
    real = os.path.realpath(path)
    if real not in _RELEASE_DIRS:
        _RELEASE_DIRS.append(real)
    sys_path[:] = [entry for entry in sys_path if entry not in _RELEASE_DIRS]
    return real


def boot_slots(cpus=None):
    """How many new workers load the app at once during a reload: half the CPUs, at least one."""
    cpus = len(os.sched_getaffinity(0)) if cpus is None else cpus
    return max(1, cpus // 2)


def take_boot_slot(ready_dir, slots, wait, notify, sleep=time.sleep, monotonic=time.monotonic):
    """A descriptor holding one of `slots` boot locks (flock on ready_dir/boot.N), once one is free or
    `wait` seconds passed (then None: load the app anyway). notify() runs while waiting (Gunicorn's
    heartbeat, so that the master does not take a waiting worker for a hung one). Closing the
    descriptor, or the worker's exit, frees the slot."""
    deadline = monotonic() + wait
    while True:
        for slot in range(slots):
            fd = os.open(os.path.join(ready_dir, f"boot.{slot}"), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                os.close(fd)
        if monotonic() >= deadline:
            return None
        notify()
        sleep(POLL)


def worker_alive(pid, proc="/proc"):
    """Whether the process pid runs. One that has exited but is not reaped yet (a zombie) does not: the
    master reaps its workers in its main loop (Gunicorn 22 and later), which waits in these hooks, so a new
    worker that dies during a reload stays a zombie until the wait ends."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc to read: a signal 0 tells whether the pid exists
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True


# What the master sends a worker to stop it (graceful, quick, quick).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


def ready_hooks(ready_dir, sleep=time.sleep, monotonic=time.monotonic, slots=None):
    """(when_ready, post_worker_init, child_exit, post_fork) hooks for gunicorn.conf.py, sharing ready_dir."""
    slots = boot_slots() if slots is None else slots
    boot_locks = {}

    def ready_file(pid):
        return os.path.join(ready_dir, str(pid))

    def when_ready(server):
        os.makedirs(ready_dir, mode=0o700, exist_ok=True)
        retire = server.manage_workers

        def manage_workers():
            started = monotonic()
            outcome = wait_for_new_workers(server, ready_file, worker_alive, sleep, monotonic)
            log_wait(server, outcome, monotonic() - started)
            retire()

        server.manage_workers = manage_workers

    def post_fork(server, worker):
        # In the new worker, before it loads the app. The workers it was forked beside number
        # num_workers or more only during a reload (the old ones are still there); at a start, or
        # when one worker replaces another, it loads the app at once.
        if len(server.WORKERS) < server.num_workers:
            return
        # Until Worker.init_process sets the worker's own handlers, the master's are in place: they
        # would queue a stop meant for this worker where nothing reads it. A worker that has not
        # loaded the app has nothing to finish: a stop ends it at once.
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        fd = take_boot_slot(ready_dir, slots, server.timeout / 2, worker.notify, sleep, monotonic)
        if fd is not None:
            boot_locks[worker.pid] = fd

    def post_worker_init(worker):
        with open(ready_file(worker.pid), "w", encoding="ascii"):
            pass
        fd = boot_locks.pop(worker.pid, None)
        if fd is not None:
            os.close(fd)

    def child_exit(server, worker):  # pylint: disable=unused-argument
        try:
            os.unlink(ready_file(worker.pid))
        except OSError:
            pass

    return when_ready, post_worker_init, child_exit, post_fork


def stop_pending(server):
    """Whether a stop signal (TERM, INT, QUIT) waits in the master's signal queue, which it reads only
    between two turns of its main loop: a queue.SimpleQueue (Gunicorn 23 and later), read and put back in
    order, or a list (before)."""
    sig_queue = getattr(server, "SIG_QUEUE", None)
    if isinstance(sig_queue, list):
        return any(sig in STOP_SIGNALS for sig in sig_queue)
    if sig_queue is None or not hasattr(sig_queue, "get_nowait"):
        return False
    pending = []
    try:
        while True:
            pending.append(sig_queue.get_nowait())
    except queue.Empty:
        pass
    for sig in pending:
        sig_queue.put_nowait(sig)
    return any(sig in STOP_SIGNALS for sig in pending)


def wait_for_new_workers(server, ready_file, alive, sleep=time.sleep, monotonic=time.monotonic):
    """While there are more workers than wanted (a reload), wait until each of the newest num_workers has
    loaded the app (its ready file exists) or died, or server.timeout passed: "ready" (all loaded),
    "died" (the others loaded; the master then replaces the dead while the loaded ones serve; if all
    died, at once: a release that does not load, which the master reports), "timeout", or "stopping"
    (a stop signal arrived: the master, which reads signals only once this wait is over, stops now
    instead of up to server.timeout later)."""
    workers = sorted(server.WORKERS.items(), key=lambda item: item[1].age)
    if not len(workers) > server.num_workers > 0:
        return "steady"
    newest = [pid for pid, _worker in workers[-server.num_workers:]]
    deadline = monotonic() + server.timeout
    while monotonic() < deadline:
        loading = [pid for pid in newest if not os.path.exists(ready_file(pid))]
        dead = [pid for pid in loading if not alive(pid)]
        if len(dead) == len(loading):
            return "died" if dead else "ready"
        if stop_pending(server):
            return "stopping"
        sleep(POLL)
    return "timeout"


# How a reload's wait ended: the master's log method and message (nothing for "steady": no reload).
WAIT_MESSAGES = {
    "ready": ("info", "reload: every new worker loaded the app in %.1f s; retiring the old workers"),
    "died": ("warning", "reload: a new worker died while loading the app; the others loaded it in %.1f s; "
                        "retiring the old workers (the master replaces the dead one)"),
    "timeout": ("warning", "reload: not every new worker loaded the app within the timeout (%.1f s); retiring "
                           "the old workers anyway"),
    "stopping": ("info", "reload: a stop signal arrived after %.1f s of waiting for the new workers; retiring the "
                         "old workers and stopping"),
}


def log_wait(server, outcome, seconds):
    """Logs how a reload's wait ended, in the master's log."""
    log = getattr(server, "log", None)
    if outcome in WAIT_MESSAGES and log is not None:
        method, message = WAIT_MESSAGES[outcome]
        getattr(log, method)(message, seconds)


def check(path):
    """Load a gunicorn.conf.py the way Gunicorn does and run Gunicorn's validator of every setting it
    sets; import the worker class from the configured pythonpath. Returns the settings it set."""
    from gunicorn.config import Config  # pylint: disable=import-outside-toplevel

    config = Config()
    namespace = runpy.run_path(path)
    applied = {}
    for name, value in namespace.items():
        if name in config.settings:
            config.set(name, value)
            applied[name] = value
    sys.path[:0] = [p for p in (config.pythonpath or "").split(",") if p]
    config.worker_class  # pylint: disable=pointless-statement  # imports the class
    for setting in ("certfile", "keyfile", "ca_certs"):
        value = getattr(config, setting, None)
        if value and not os.path.isfile(value):
            raise ValueError(f"{setting} {value} does not exist")
    return applied


def main(argv):
    if len(argv) != 2 or argv[0] != "--check":
        print(f"usage: {os.path.basename(__file__)} --check GUNICORN_CONF", file=sys.stderr)
        return 2
    try:
        import gunicorn  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        print(f"Gunicorn is not installed for {sys.executable}: the release's virtualenv needs the app server's "
              "packages (the gunicorn_exports packages, which python_app installs)", file=sys.stderr)
        return 1
    try:
        applied = check(argv[1])
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure rejects the configuration
        print(f"invalid Gunicorn configuration {argv[1]}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"ok: {len(applied)} settings")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
