# Copyright: pydeploy maintainers
# Apache License 2.0 (see LICENSE)
"""The stack contract's wiring: each role's `<role>_stack` input from the other roles' exports.

The collection's playbooks are the only place where one role's output becomes another role's
input (ARCHITECTURE.md). They call `pydeploy.django_stack.stack_input` with the inventory's
hostvars; everything here is plain data in, plain data out, so that it is unit-tested without
Ansible.
"""

from __future__ import annotations

import ipaddress

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # unit tests without Ansible
    AnsibleFilterError = ValueError

SERVERS = ("gunicorn", "uvicorn_worker")
LOCAL_DB_HOSTS = ("", "localhost", "127.0.0.1", "::1")


def _get(hostvars, host, name, why):
    try:
        value = hostvars[host][name]
    except KeyError:
        value = None
    if value is None:
        raise AnsibleFilterError(
            f"{host} has no {name}: it was not validated in this run ({why}). The collection's playbooks "
            "need every host of the tiers in the run: run without --limit, and choose the tiers' hosts with "
            "pydeploy_db_hosts / pydeploy_app_hosts / pydeploy_web_hosts instead."
        )
    return value


def address_of(hostvars, host):
    """The address other tiers reach `host` at (and see its connections come from)."""
    vars_ = hostvars[host]
    explicit = vars_.get("pydeploy_address") if hasattr(vars_, "get") else None
    if explicit:
        return str(explicit)
    facts = vars_.get("ansible_facts") or {}
    for key in ("default_ipv4", "default_ipv6"):
        address = (facts.get(key) or {}).get("address")
        if address:
            return str(address)
    raise AnsibleFilterError(
        f"no address is known for {host}: set pydeploy_address for it, or gather its facts (default_ipv4)"
    )


def same_machine(hostvars, a, b):
    """Two inventory names of one machine: the same name, or the same connection address."""
    if a == b:
        return True
    target = str(hostvars[a].get("ansible_host") or "")
    return bool(target) and target == str(hostvars[b].get("ansible_host") or "")


def _network(address):
    ip = ipaddress.ip_address(address)
    return f"{ip}/{ip.max_prefixlen}"


def _host_port(address, port):
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _reachable_binds(binds, address):
    """tcp_binds as the web tier dials them: wildcard addresses become the host's own address."""
    out = []
    for bind in binds:
        host, _sep, port = str(bind).rpartition(":")
        host = host.strip("[]")
        if host in ("0.0.0.0", "::", ""):
            host = address
        out.append(_host_port(host, port))
    return out


def _loopback_binds(binds):
    """tcp_binds as a web server on the same machine dials them: wildcards become loopback."""
    out = []
    for bind in binds:
        host, unused_sep, port = str(bind).rpartition(":")
        host = host.strip("[]")
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        out.append(_host_port(host, port))
    return out


def _db_host_of(hostvars, app_host, db_hosts):
    """The db host that app_host's python_app_database points at, or None."""
    database = (_get(hostvars, app_host, "python_app_exports", "app tier").get("database") or {})
    if database.get("engine") != "postgresql":
        return None
    target = str(database.get("host") or "")
    if target.startswith("/") or target in LOCAL_DB_HOSTS:
        return next((db for db in db_hosts if same_machine(hostvars, db, app_host)), None)
    for db_host in db_hosts:
        names = {db_host, str(hostvars[db_host].get("ansible_host") or ""), address_of(hostvars, db_host)}
        if target in names:
            return db_host
    if len(db_hosts) == 1:
        return db_hosts[0]
    return None


def stack_input(hostvars, host, role, db_hosts=(), app_hosts=(), web_hosts=(), server="gunicorn"):
    db_hosts, app_hosts, web_hosts = list(db_hosts), list(app_hosts), list(web_hosts)
    if server not in SERVERS:
        raise AnsibleFilterError(f"pydeploy_app_server must be one of {', '.join(SERVERS)} (got {server!r})")
    server_exports = f"{server}_exports"

    if role == "python_app":
        clients = sorted({address_of(hostvars, web) for web in web_hosts if not same_machine(hostvars, web, host)})
        stack = {"server": _get(hostvars, host, server_exports, "app tier"), "database_tls": {}, "migrate": True,
                 "web_clients": clients}
        db_host = _db_host_of(hostvars, host, db_hosts)
        if db_host is not None and not same_machine(hostvars, db_host, host):
            pg = _get(hostvars, db_host, "postgres_exports", "db tier")
            if pg.get("ca_pem"):
                stack["database_tls"] = {"ca_pem": pg["ca_pem"], "sslmode": pg.get("sslmode") or "verify-full"}
        return stack

    if role in SERVERS:
        clients = [address_of(hostvars, web) for web in web_hosts if not same_machine(hostvars, web, host)]
        return {"app": _get(hostvars, host, "python_app_exports", "app tier"), "web_clients": sorted(set(clients))}

    if role == "postgres":
        databases, seen, connections, networks = [], set(), 0, set()
        for app_host in app_hosts:
            if _db_host_of(hostvars, app_host, db_hosts) != host:
                continue
            database = _get(hostvars, app_host, "python_app_exports", "app tier")["database"]
            key = (database.get("name"), database.get("user"))
            if key not in seen:
                seen.add(key)
                databases.append({"name": database.get("name"), "user": database.get("user"),
                                  "password": database.get("password") or ""})
            connections += int(_get(hostvars, app_host, server_exports, "app tier").get("db_connections") or 0)
            if not same_machine(hostvars, app_host, host):
                networks.add(_network(address_of(hostvars, app_host)))
        return {"app_databases": databases, "app_connections": connections, "app_networks": sorted(networks)}

    if role == "nginx":
        # One entry per app (python_app_exports.name), in the order the app hosts list them: an
        # inventory may run several apps, on hosts of their own or as names of one machine.
        apps = {}
        for app_host in app_hosts:
            name = _get(hostvars, app_host, "python_app_exports", "app tier")["name"]
            apps.setdefault(name, []).append(app_host)
        out = []
        for hosts in apps.values():
            upstream = []
            server_of_first = _get(hostvars, hosts[0], server_exports, "app tier")
            if all(same_machine(hostvars, app_host, host) for app_host in hosts):
                # One machine: the unix socket; an app server without one is dialed on loopback.
                if not server_of_first.get("socket_path"):
                    for app_host in hosts:
                        upstream += _loopback_binds(
                            _get(hostvars, app_host, server_exports, "app tier").get("tcp_binds") or [])
                    upstream = list(dict.fromkeys(upstream))
            else:
                for app_host in hosts:
                    binds = _get(hostvars, app_host, server_exports, "app tier").get("tcp_binds") or []
                    if not binds:
                        raise AnsibleFilterError(
                            f"web host {host} reaches the app on {app_host} over the network, but {app_host}'s app "
                            f"server listens on no TCP address: give it one (gunicorn_bind_tcp or uvicorn_worker_bind_tcp, "
                            f"e.g. ['{address_of(hostvars, app_host)}:8000'])"
                        )
                    upstream += _reachable_binds(binds, address_of(hostvars, app_host))
            out.append({
                "app": _get(hostvars, hosts[0], "python_app_exports", "app tier"),
                "server": server_of_first,
                "upstream_servers": upstream,
            })
        return {"apps": out}

    raise AnsibleFilterError(f"stack_input: unknown role {role!r}")


def batch_upstream(hostvars, hosts, server="gunicorn"):
    """The upstream addresses (as nginx lists them) of `hosts`: what a deploy marks down."""
    out = []
    for host in hosts:
        binds = _get(hostvars, host, f"{server}_exports", "app tier").get("tcp_binds") or []
        out += _reachable_binds(binds, address_of(hostvars, host))
    return out


def remote_hosts(hostvars, hosts, others):
    """The hosts that share a machine with none of `others` (e.g. web hosts that reach the app
    tier over the network, which a deploy drains and static files are copied to)."""
    others = list(others)
    return [host for host in hosts if not any(same_machine(hostvars, host, other) for other in others)]


def first_of_app(hostvars, hosts, host):
    """Whether `host` is the first of `hosts` that runs its app (python_app_exports.name): the
    host that migrates the app's database in a deploy, once per app when the run holds several."""
    name = _get(hostvars, host, "python_app_exports", "app tier")["name"]
    for other in hosts:
        if _get(hostvars, other, "python_app_exports", "app tier")["name"] == name:
            return other == host
    return False


APP_TIER_FACT = "__pydeploy_app_tier"


def static_source(hostvars, app_hosts):
    """The app host the web hosts copy the static files from: the first of `app_hosts` that finished
    the app tier (or a release) in this run, which the plays record in the host's APP_TIER_FACT
    ('started', then 'done'). A host that started and did not finish failed: its static root may be
    empty or another release's. When no app host ran the app tier in this run (a web tier run on its
    own), the first app host, whose files are those of the release that serves."""
    hosts = list(app_hosts)
    if not hosts:
        raise AnsibleFilterError("There is no app host to copy the static files from: the app tier has no host.")
    state = {}
    for host in hosts:
        try:
            state[host] = hostvars[host][APP_TIER_FACT]
        except KeyError:
            state[host] = None
    done = [host for host in hosts if state[host] == "done"]
    if done:
        return done[0]
    failed = [host for host in hosts if state[host] == "started"]
    if failed:
        raise AnsibleFilterError(
            f"No app host finished the app tier in this run ({', '.join(failed)} failed, see above): the web "
            "hosts keep the static files they have, as none has a whole release to copy them from."
        )
    return hosts[0]


class FilterModule:
    def filters(self):
        return {"stack_input": stack_input, "batch_upstream": batch_upstream, "remote_hosts": remote_hosts,
                "first_of_app": first_of_app, "static_source": static_source}
