"""Uvicorn for pydeploy.django_stack.uvicorn_worker: Gunicorn worker class, standalone entry, settings check.

The role installs this file outside the app's releases and runs it with a release's interpreter.

Gunicorn mode: Gunicorn's `pythonpath` names this directory and
`worker_class = "pydeploy_uvicorn_worker.UvicornWorker"`. Gunicorn imports the module once, in
the master, and a reload (HUP) re-reads gunicorn.conf.py but never re-imports a module, so the
Uvicorn settings are not written into the class: they travel in gunicorn.conf.py itself
(`raw_env = ["PYDEPLOY_UVICORN_CONFIG=<json>"]`, re-read on every HUP) and every worker reads
them when the master creates it. A HUP applies changed settings to the new workers.

Standalone mode: `python pydeploy_uvicorn_worker.py serve <uvicorn arguments>` is Uvicorn's own
command line and supervisor (`--fd 3 --workers N ...`), with two corrections: the server below,
and workers spawned with this release's interpreter rather than through the `current` link.

Both modes use a Uvicorn server whose shutdown does not reset the connections it accepted last
(see _Server). In standalone mode the supervisor also lets go of its copy of each worker's end of their
health-check pipe (see _start_letting_go_of_the_workers_end).

Standalone mode with several listening sockets (the unix socket and TCP addresses of the socket
unit): systemd passes them as fds 3, 4, ... (LISTEN_FDS); Uvicorn's `--fd 3` takes one, so the
supervisor hands all of them to every worker (and a single-process server serves all of them).

`--check JSON [--require DIST...] [--cli UVICORN-ARGS...]` is what the role runs with the release's
interpreter before anything goes live, and at every run (the release may have changed): the
distributions the settings need are installed, a uvicorn.Config builds with the settings (unknown
keys, wrong values and implementations that are not installed fail), and Uvicorn's own
command-line parser accepts the standalone command line. Any failure exits with status 1.
"""
import asyncio
import json
import os
import socket
import sys

ENV = "PYDEPLOY_UVICORN_CONFIG"
# Settings Gunicorn owns in gunicorn mode (listening sockets, processes, app, logging).
OWNED_BY_GUNICORN = frozenset({
    "app", "host", "port", "uds", "fd", "workers", "reload", "reload_dirs", "reload_includes", "reload_excludes",
    "reload_delay", "env_file", "log_config", "callback_notify", "timeout_notify", "factory", "backlog",
})

try:
    from uvicorn.server import Server
except ImportError:  # pragma: no cover - the role checks the packages before it runs this file
    Server = None

try:
    from gunicorn.arbiter import Arbiter
    from uvicorn_worker import UvicornWorker as _UvicornWorker
except ImportError:  # standalone mode: no Gunicorn, no uvicorn-worker
    _UvicornWorker = None


def settings_from(raw):
    """The Uvicorn settings (keyword arguments of uvicorn.Config) from their JSON text."""
    settings = json.loads(raw or "{}")
    if not isinstance(settings, dict):
        raise ValueError(f"{ENV} must hold a JSON object, not {type(settings).__name__}")
    owned = sorted(OWNED_BY_GUNICORN & settings.keys())
    if owned:
        raise ValueError(f"{ENV}: {', '.join(owned)} are Gunicorn's settings in this mode, not Uvicorn's")
    return settings


def check(raw):
    """Build and load a uvicorn.Config with the settings, as a worker would."""
    from uvicorn.config import Config

    async def probe(scope, receive, send):  # stands in for the app: only the settings are checked
        raise RuntimeError("not served")

    settings = settings_from(raw)
    config = Config(app=probe, log_config=None, **settings)  # TypeError on an unknown setting
    config.load()  # imports the http, ws and lifespan implementations
    config.get_loop_factory()  # imports the event loop (uvloop)
    return {name: getattr(config, name) for name in sorted(settings)}


if Server is not None:

    class _Server(Server):
        """Uvicorn's server, with a shutdown that does not reset connections it has just accepted.

        Uvicorn's shutdown stops listening and at once closes every connection without a request
        in progress, including one accepted a moment ago whose request is not read yet: that
        client (nginx) gets a reset, a 502, at a reload, a restart or a worker recycle. Stopping
        to accept first and giving the loop a moment to read those requests turns them into
        requests in progress, which the shutdown lets finish (with Connection: close).
        """

        ACCEPTED_GRACE = 0.5  # seconds

        async def startup(self, sockets=None):
            # One process serving (--workers 1): every socket systemd passed, not only fd 3.
            if sockets is None:
                passed = _all_systemd_sockets(None)
                sockets = passed if passed else None
            await super().startup(sockets=sockets)

        async def shutdown(self, sockets=None):
            for server in self.servers:
                server.close()
            await asyncio.sleep(self.ACCEPTED_GRACE)
            await super().shutdown(sockets=sockets)


if _UvicornWorker is not None:

    class UvicornWorker(_UvicornWorker):
        """uvicorn_worker.UvicornWorker with the role's settings, read anew for every worker."""

        def __init__(self, age, ppid, sockets, app, timeout, cfg, log):
            # Gunicorn sets raw_env in the master's environment too; cfg.env is read first so
            # that a worker always gets the settings of the configuration it was spawned from.
            raw = (cfg.env or {}).get(ENV) or os.environ.get(ENV)
            self.CONFIG_KWARGS = {**_UvicornWorker.CONFIG_KWARGS, **settings_from(raw)}
            super().__init__(age, ppid, sockets, app, timeout, cfg, log)

        async def _serve(self):
            # uvicorn_worker.UvicornWorker._serve of uvicorn-worker 0.4.0, with the server above.
            self.config.app = self.wsgi
            server = _Server(config=self.config)
            self._install_sigquit_handler()
            await server.serve(sockets=self.sockets)
            if not server.started:
                sys.exit(Arbiter.WORKER_BOOT_ERROR)


def systemd_fds(environ=None, pid=None):
    """The listening fds systemd passed to this process (3, 4, ...), or [] (none, or not for us)."""
    environ = os.environ if environ is None else environ
    try:
        count = int(environ.get("LISTEN_FDS", "0"))
        listen_pid = int(environ.get("LISTEN_PID", "0"))
    except ValueError:
        return []
    if count < 1 or listen_pid != (os.getpid() if pid is None else pid):
        return []
    return list(range(3, 3 + count))


def _all_systemd_sockets(sockets):
    """Every socket systemd passed (duplicated fds: systemd's stay open), when it passed more than
    the one `--fd 3` names; else `sockets` unchanged."""
    fds = systemd_fds()
    if len(fds) < 2:
        return sockets
    return [socket.socket(fileno=os.dup(fd)) for fd in fds]


def _multiprocess_serving_every_socket(base):
    """Uvicorn's supervisor class, handing every systemd socket to the workers it spawns."""

    class _Multiprocess(base):
        def __init__(self, *args, **kwargs):
            # Multiprocess(config, sockets) in Uvicorn 0.54 (config, target, sockets before).
            if "sockets" in kwargs:
                kwargs["sockets"] = _all_systemd_sockets(kwargs["sockets"])
            elif args:
                args = (*args[:-1], _all_systemd_sockets(args[-1]))
            super().__init__(*args, **kwargs)

    return _Multiprocess


def _start_letting_go_of_the_workers_end(start):
    """Uvicorn's Process.start, after which the supervisor closes its copy of the worker's end of their
    health-check pipe (the spawned worker has its own by then).

    Uvicorn 0.54 keeps both ends in the supervisor. A worker that exits while the supervisor checks it
    (a worker recycled by --limit-max-requests, in its last moments) answers no ping, and as the
    supervisor still holds the worker's end the pipe never reports it closed: the check waits its whole
    --timeout-worker-healthcheck, and the supervisor restarts no worker meanwhile (both workers of
    the scenario, recycled together, left none serving for 10 s). With the end closed, the worker's
    exit closes the pipe and the check returns at once."""
    def start_and_let_go(self):
        start(self)
        self.child_conn.close()

    start_and_let_go._pydeploy = True
    return start_and_let_go


def _use_server_in_standalone_uvicorn():
    """Make Uvicorn's CLI and supervisor build _Server (and serve every systemd socket). Runs in the
    supervisor and, as the supervisor's spawned workers import this file again as __mp_main__, in
    every worker."""
    import importlib

    # The modules themselves: the package's attribute `uvicorn.main` is the click command, which
    # `uvicorn/__init__.py` imports under that name.
    main_module = importlib.import_module("uvicorn.main")
    multiprocess_module = importlib.import_module("uvicorn.supervisors.multiprocess")
    main_module.Server = _Server
    multiprocess_module.Server = _Server
    if not getattr(main_module.Multiprocess, "_pydeploy", False):
        main_module.Multiprocess = _multiprocess_serving_every_socket(main_module.Multiprocess)
        main_module.Multiprocess._pydeploy = True
    # A method, not a subclass: the Process object is pickled into each spawned worker by its class.
    process_class = multiprocess_module.Process
    if not getattr(process_class.start, "_pydeploy", False):
        process_class.start = _start_letting_go_of_the_workers_end(process_class.start)


if __name__ == "__mp_main__" and Server is not None:
    _use_server_in_standalone_uvicorn()


def serve(argv):
    """Standalone mode: Uvicorn's own command line (`uvicorn ARGS`) with _Server."""
    # Workers are spawned: new interpreters that take the supervisor's executable and sys.path.
    # Started through the `current` link, both would name whatever release `current` points to
    # when a worker starts (after a crash, at a HUP), not the release the supervisor runs: run
    # as this release's own interpreter (same pid, the systemd socket stays fd 3).
    bindir = os.path.realpath(os.path.dirname(sys.executable))
    python = os.path.join(bindir, os.path.basename(sys.executable))
    if python != sys.executable:
        os.execv(python, [python, os.path.abspath(__file__), "serve", *argv])

    import importlib

    _use_server_in_standalone_uvicorn()
    return importlib.import_module("uvicorn.main").main(argv, prog_name="uvicorn")


def missing_distributions(names):
    """The distributions among names that are not installed for this interpreter."""
    from importlib import metadata

    missing = []
    for name in names:
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
    return missing


def check_cli(args):
    """Uvicorn's own command-line parser (types, choices) on the standalone command line."""
    from uvicorn.main import main as cli

    cli.make_context("uvicorn", list(args))


def parse_check_args(argv):
    """--check JSON [--require DIST...] [--cli ARGS...] -> (json, dists, cli args or None)."""
    raw, rest = argv[1], argv[2:]
    cli = None
    if "--cli" in rest:
        at = rest.index("--cli")
        rest, cli = rest[:at], rest[at + 1:]
    dists = []
    if rest[:1] == ["--require"]:
        dists = rest[1:]
    elif rest:
        raise ValueError(f"unexpected arguments {rest}")
    return raw, dists, cli


def main(argv):
    if argv[:1] == ["serve"]:
        return serve(argv[1:])
    if len(argv) < 2 or argv[0] != "--check":
        print(f"usage: {os.path.basename(__file__)} --check JSON [--require DIST...] [--cli UVICORN-ARGS...] | "
              "serve UVICORN-ARGS...", file=sys.stderr)
        return 2
    try:
        raw, dists, cli = parse_check_args(argv)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    missing = missing_distributions(dists)
    if missing:
        print(f"{sys.executable} lacks {', '.join(missing)}: the release's virtualenv needs the app server's packages "
              "(uvicorn_worker_exports.packages, which python_app installs)", file=sys.stderr)
        return 1
    try:
        effective = check(raw)
        if cli is not None:
            check_cli(cli)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure (uvicorn exits on some) rejects them
        print(f"invalid Uvicorn settings: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(effective, default=str, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
