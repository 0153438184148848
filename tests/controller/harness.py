"""Runs the collection's playbooks against generated inventories on the controller, without containers.

Every host has ``ansible_connection: local``; its facts come from a pre-filled jsonfile fact cache
(``gathering = smart`` then skips fact gathering), so a run takes a second or two. The callback
``callback_plugins/pydeploy_record.py`` records what ran and ends the run (exit code 97) the moment a
task of a play after the validation play is about to start: nothing that changes a host ever runs.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
COLLECTION = ROOT / "ansible_collections" / "pydeploy" / "django_stack"
REACHED_RC = 97
CASE_GROUP = "pydeploy_case"
PLAYBOOKS = ("site", "app", "web", "db", "deploy", "rollback", "restore")

# Values for the vault_* indirections of the repo's inventories (never real secrets).
DUMMY_VAULT = {
    "vault_django_secret_key": "controller-test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
    "vault_postgres_demo_password": "controller-test-only-db-password",
}

def repo_hosts(name):
    """Hosts of a repo inventory (inventories/<name>/hosts.yml): {host: {groups, address}}."""
    data = yaml.safe_load((ROOT / "inventories" / name / "hosts.yml").read_text())
    hosts = {}

    def walk(group, node):
        node = node or {}
        for host, hvars in (node.get("hosts") or {}).items():
            entry = hosts.setdefault(host, {"groups": [], "address": None})
            if group != "all":
                entry["groups"].append(group)
            if hvars and hvars.get("ansible_host"):
                entry["address"] = hvars["ansible_host"]
        for child, sub in (node.get("children") or {}).items():
            walk(child, sub)

    walk("all", data["all"])
    for index, entry in enumerate(hosts.values()):
        entry["address"] = entry["address"] or f"192.0.2.{100 + index}"
    return hosts


def _three():
    hosts = repo_hosts("prod")
    keep, seen = {}, set()
    for name, host in hosts.items():  # the first host of each tier: web1, app1, db1
        tier = tuple(host["groups"])
        if tier not in seen:
            seen.add(tier)
            keep[name] = host
    return keep


# Layouts: hosts with their groups and addresses, and the repo inventory whose group_vars and
# host_vars they use. single and prod are the repo's inventories; three is prod with one host per tier.
LAYOUTS = {
    "single": {"hosts": repo_hosts("single"), "repo": ROOT / "inventories" / "single"},
    "three": {"hosts": _three(), "repo": ROOT / "inventories" / "prod"},
    "prod": {"hosts": repo_hosts("prod"), "repo": ROOT / "inventories" / "prod"},
}


def ansible_playbook():
    found = Path(sys.executable).with_name("ansible-playbook")
    if found.exists():
        return str(found)
    return shutil.which("ansible-playbook") or "ansible-playbook"


# ------------------------------------------------------------------------------------------- facts
def facts(hostname, address, debian="12", vcpus=2, memtotal_mb=2048):
    """The facts of a Debian host, as setup would return them (the subset the roles read, and more)."""
    short = hostname.split(".")[0]
    release = {"12": ("bookworm", "12.11"), "13": ("trixie", "13.1")}[str(debian)]
    return {
        "ansible_os_family": "Debian",
        "ansible_distribution": "Debian",
        "ansible_distribution_major_version": str(debian),
        "ansible_distribution_release": release[0],
        "ansible_distribution_version": release[1],
        "ansible_system": "Linux",
        "ansible_kernel": "6.1.0-37-amd64",
        "ansible_architecture": "x86_64",
        "ansible_machine": "x86_64",
        "ansible_userspace_bits": "64",
        "ansible_pkg_mgr": "apt",
        "ansible_service_mgr": "systemd",
        "ansible_processor_vcpus": vcpus,
        "ansible_processor_count": 1,
        "ansible_processor_cores": vcpus,
        "ansible_processor_threads_per_core": 1,
        "ansible_memtotal_mb": memtotal_mb,
        "ansible_memfree_mb": memtotal_mb // 2,
        "ansible_swaptotal_mb": 0,
        "ansible_hostname": short,
        "ansible_nodename": hostname,
        "ansible_fqdn": hostname,
        "ansible_domain": hostname.partition(".")[2],
        "ansible_default_ipv4": {"address": address, "interface": "eth0", "network": address.rsplit(".", 1)[0] + ".0",
                                 "netmask": "255.255.255.0", "prefix": "24", "gateway": address.rsplit(".", 1)[0] + ".1",
                                 "type": "ether", "alias": "eth0"},
        "ansible_default_ipv6": {},
        "ansible_all_ipv4_addresses": [address],
        "ansible_all_ipv6_addresses": [],
        "ansible_interfaces": ["lo", "eth0"],
        "ansible_python_version": "3.11.2",
        "ansible_python": {"executable": "/usr/bin/python3", "type": "cpython",
                           "version": {"major": 3, "minor": 11, "micro": 2, "releaselevel": "final", "serial": 0},
                           "version_info": [3, 11, 2, "final", 0]},
        "ansible_selinux": {"status": "disabled"},
        "ansible_virtualization_type": "kvm",
        "ansible_virtualization_role": "guest",
        "ansible_user_id": "root",
        "ansible_env": {"HOME": "/root", "LANG": "C.UTF-8", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
        "ansible_lsb": {"codename": release[0], "id": "Debian", "major_release": str(debian), "release": release[1]},
        "gather_subset": ["all"],
        "module_setup": True,
        "_ansible_facts_gathered": True,
    }


def write_fact_cache(directory, hosts):
    """Fill a jsonfile fact cache (ansible-core 2.19 layout: s<schema>_<host> with a JSON payload)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    prefix = _fact_cache_prefix()
    for name, host in hosts.items():
        data = facts(name, host["address"], debian=host.get("debian", "12"))
        data.update(host.get("facts", {}))
        (directory / f"{prefix}{name}").write_text(json.dumps({"__payload__": json.dumps(data)}))


def _fact_cache_prefix():
    try:
        from ansible._internal._plugins._cache import PluginInterposer  # ansible-core >= 2.19

        return PluginInterposer._get_wrapped_key_prefix()  # pylint: disable=protected-access
    except ImportError:  # pragma: no cover - older cores store the facts as they are
        return ""


# ------------------------------------------------------------------------------------------- inventories
@dataclass
class Inventory:
    path: Path
    hosts: dict
    fact_cache: Path


def _inventory_dir(inv, repo, subdirs):
    """An inventory directory with the repo inventory's `subdirs` copied in (when there is one), its
    group_vars/all.yml moved to group_vars/all/00_base.yml; returns group_vars/all."""
    inv.mkdir(parents=True, exist_ok=True)
    if repo is not None:
        for sub in subdirs:
            if (repo / sub).is_dir():
                shutil.copytree(repo / sub, inv / sub)
    all_dir = inv / "group_vars" / "all"
    for suffix in (".yml", ".yaml", ".json"):
        single_file = inv / "group_vars" / f"all{suffix}"
        if single_file.is_file():
            all_dir.mkdir(parents=True, exist_ok=True)
            single_file.rename(all_dir / f"00_base{suffix}")
    all_dir.mkdir(parents=True, exist_ok=True)
    (inv / "host_vars").mkdir(exist_ok=True)
    return all_dir


def build_inventory(workdir, layout="single", group_vars=None, host_vars=None, hosts=None, base_group_vars=None,
                    vault=True):
    """An inventory directory for a layout (or explicit hosts): hosts.yml with every host local, the repo
    inventory's group_vars/ and host_vars/ as they are, group_vars/all/01_vault.yml (dummy vault values),
    group_vars/pydeploy_case.yml (the case's variables, which win over every group_vars file),
    host_vars/<host>.yml, and a fact cache."""
    workdir = Path(workdir)
    spec = LAYOUTS[layout] if hosts is None else {"hosts": hosts, "repo": None}
    hosts = copy.deepcopy(spec["hosts"])
    inv = workdir / "inventory"
    all_dir = _inventory_dir(inv, spec["repo"], ("group_vars", "host_vars"))
    if base_group_vars is not None:
        (all_dir / "00_base.yml").write_text(_dump(base_group_vars))
    groups = {}
    for name, host in hosts.items():
        for group in host.get("groups", []):
            groups.setdefault(group, {}).setdefault("hosts", {})[name] = None
    for name, host in hosts.items():
        entry = {"ansible_host": host["address"]}
        entry.update(host.get("vars", {}))
        for group in host.get("groups", [])[:1]:
            groups[group]["hosts"][name] = entry
    # The case's group_vars go to a group of every host with the highest priority, so that they win
    # over every group_vars file of the repo inventory, whatever it is named (host_vars still win).
    groups[CASE_GROUP] = {"hosts": {name: None for name in hosts}, "vars": {"ansible_group_priority": 100}}
    document = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        "children": groups,
    }}
    (inv / "hosts.yml").write_text(yaml.safe_dump(document, sort_keys=False))
    if vault:
        (all_dir / "01_vault.yml").write_text(_dump(DUMMY_VAULT))
    if group_vars:
        (inv / "group_vars" / f"{CASE_GROUP}.yml").write_text(_dump(group_vars))
    for name, values in (host_vars or {}).items():
        if name not in hosts:
            raise ValueError(f"host_vars for {name}, which is not a host of the layout {layout}")
        (inv / "host_vars" / f"{name}.yml").write_text(_dump(values))
    cache = workdir / "facts"
    write_fact_cache(cache, hosts)
    return Inventory(inv, hosts, cache)


class _Dumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper, data):
    # Keep newlines and quotes exactly: double-quoted style when the string has special characters.
    if any(c in data for c in "\n\r\t\x00") or data != data.strip():
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_presenter)


def _dump(data):
    return "---\n" + yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


# ------------------------------------------------------------------------------------------- runs
@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    records: list
    seconds: float
    command: list = field(default_factory=list)
    cpu: float = 0.0

    @property
    def reached(self):
        """The first task of a play after the validation play (the run was stopped there), or None."""
        return next((r for r in self.records if r["event"] == "after_validation"), None)

    @property
    def failures(self):
        return [r for r in self.records if r["event"] in ("failed", "item_failed", "unreachable")]

    @property
    def warnings(self):
        out = []
        for record in self.records:
            if record["event"] == "warnings":
                out.extend(f"{record['host']}: {w}" for w in record["warnings"])
        return out

    def task_starts(self):
        return [r for r in self.records if r["event"] == "task_start"]

    def messages(self, host=None):
        """Every failure message (with the validate_vars problems), optionally of one host."""
        out = []
        for record in self.failures:
            if host is not None and record.get("host") != host:
                continue
            out.append(record.get("msg") or "")
            for problem in record.get("problems") or []:
                out.append(problem.get("msg", ""))
            out.extend(record.get("results") or [])
        return out

    def summary(self, limit=4000):
        starts = [f"  [{r['play_index']}] {r['play'][:50]} | {r['task']}" for r in self.task_starts()]
        fails = [f"  {r['host']} | {r['task']} | {r['path']}\n    {r['msg'][:1500]}" for r in self.failures]
        text = (f"rc={self.rc} seconds={self.seconds:.1f}\ncommand: {' '.join(self.command)}\n"
                f"reached after validation: {self.reached and self.reached['task']}\n"
                f"failures:\n" + "\n".join(fails) + "\ntasks started:\n" + "\n".join(starts[-40:]))
        if not self.records:
            text += "\nstdout:\n" + self.stdout[-limit:] + "\nstderr:\n" + self.stderr[-limit:]
        return text


def run_playbook(playbook, inventory, workdir, extra_vars=None, extra_args=(), env=None, timeout=900):
    """Run a playbook (a name of PLAYBOOKS, a FQCN or a path) against an Inventory; return a Run."""
    workdir = Path(workdir)
    record = workdir / "record.jsonl"
    if record.exists():
        record.unlink()
    if playbook in PLAYBOOKS:
        playbook = f"pydeploy.django_stack.{playbook}"
    command = [ansible_playbook(), "-i", str(inventory.path), str(playbook)]
    if extra_vars:
        ev = workdir / "extra_vars.json"
        ev.write_text(json.dumps(extra_vars))
        command += ["-e", f"@{ev}"]
    command += list(extra_args)
    tmp = workdir / "tmp"
    tmp.mkdir(exist_ok=True)
    environment = dict(os.environ)
    for key in list(environment):
        if key.startswith("ANSIBLE_"):
            del environment[key]
    environment.update({
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT),
        "ANSIBLE_CALLBACK_PLUGINS": str(HERE / "callback_plugins"),
        "ANSIBLE_CALLBACKS_ENABLED": "pydeploy_record",
        "ANSIBLE_GATHERING": "smart",
        "ANSIBLE_CACHE_PLUGIN": "jsonfile",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(inventory.fact_cache),
        "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "0",
        "ANSIBLE_LOCAL_TEMP": str(tmp),
        "ANSIBLE_REMOTE_TEMP": str(tmp / "remote"),
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "0",
        "ANSIBLE_FORKS": "10",
        "PYDEPLOY_RECORD": str(record),
        "TMPDIR": str(tmp),
    })
    environment.update(env or {})
    start = time.monotonic()
    rc, stdout, stderr, cpu = _run_measured(command, environment, timeout)
    seconds = time.monotonic() - start
    records = []
    if record.exists():
        for line in record.read_text().splitlines():
            if line.strip():
                records.append(json.loads(line))
    return Run(rc, stdout, stderr, records, seconds, command, cpu)


def _run_measured(command, environment, timeout):
    """(rc, stdout, stderr, CPU seconds): the command's own CPU (user + system, with the worker processes it
    waited for) from wait4(), which, unlike RUSAGE_CHILDREN, counts this child alone while others run."""
    proc = subprocess.Popen(command, cwd=str(ROOT), env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    streams = {}
    readers = [threading.Thread(target=lambda name, pipe: streams.__setitem__(name, pipe.read()), args=(name, pipe))
               for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr))]
    for reader in readers:
        reader.start()
    expired = []
    timer = threading.Timer(timeout, lambda: (expired.append(True), proc.kill()))
    timer.start()
    try:
        _pid, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait for it again
    for reader in readers:
        reader.join()
    proc.stdout.close()
    proc.stderr.close()
    if expired:
        raise subprocess.TimeoutExpired(command, timeout, streams["stdout"], streams["stderr"])
    return proc.returncode, streams["stdout"], streams["stderr"], usage.ru_utime + usage.ru_stime


# ------------------------------------------------------------------------------------------- molecule scenarios
def _substitute_env(text, env):
    """Molecule's substitution in molecule.yml: ${VAR}, ${VAR:-default}, $$ for a dollar."""
    def replace(match):
        name, default = match.group(1), match.group(3)
        value = env.get(name, "")
        if value == "" and default is not None:
            return default
        return value

    text = text.replace("$$", "\x00DOLLAR\x00")
    text = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}", replace, text)
    return text.replace("\x00DOLLAR\x00", "$")


def molecule_scenario(name, env):
    """(hosts, group_vars) of a Molecule scenario: the shared base config with the scenario's overrides."""
    env = dict(env, MOLECULE_SCENARIO_NAME=name)
    base = yaml.safe_load(_substitute_env((ROOT / ".config" / "molecule" / "config.yml").read_text(), env))
    scenario = yaml.safe_load(_substitute_env((ROOT / "molecule" / name / "molecule.yml").read_text(), env)) or {}
    platforms = scenario.get("platforms") or base["platforms"]
    group_vars = dict(base["provisioner"]["inventory"]["group_vars"]["all"])
    group_vars.update(((scenario.get("provisioner") or {}).get("inventory") or {}).get("group_vars", {}).get("all", {}))
    hosts = {}
    for index, platform in enumerate(platforms):
        hosts[platform["name"]] = {"groups": platform.get("groups", []), "address": f"172.30.0.{10 + index}"}
    inventory = ((scenario.get("provisioner") or {}).get("inventory") or {})
    if inventory.get("hosts"):
        # A scenario with an inventory of its own (molecule/projects): its hosts, their groups and
        # host_vars; names with the same ansible_host (one container) share one address. Its
        # group_vars of other groups go to every host (only the validation of their tier reads them).
        addresses = {platform["name"]: hosts[platform["name"]]["address"] for platform in platforms}
        hosts = {}
        for group, members in ((inventory["hosts"].get("all") or {}).get("children") or {}).items():
            for name, values in ((members or {}).get("hosts") or {}).items():
                values = dict(values or {})
                target = values.get("ansible_host") or name
                entry = hosts.setdefault(name, {"groups": [], "vars": {}})
                entry["groups"].append(group)
                entry["address"] = addresses.setdefault(target, f"172.30.0.{10 + len(addresses)}")
                entry["vars"]["ansible_host"] = entry["address"]
        for name, values in (inventory.get("host_vars") or {}).items():
            hosts[name]["vars"].update(values or {})
        for group, values in (inventory.get("group_vars") or {}).items():
            if group != "all":
                group_vars.update(values or {})
    return hosts, group_vars


def converge_variants(name):
    """The variables of every import in a scenario's converge.yml that sets some (a second app, ...)."""
    data = yaml.safe_load((ROOT / "molecule" / name / "converge.yml").read_text()) or []
    out = []
    for play in data:
        if "ansible.builtin.import_playbook" in play and play.get("vars"):
            out.append((play["ansible.builtin.import_playbook"], play["vars"]))
    return out


def new_workdir(base, name):
    path = Path(tempfile.mkdtemp(prefix=re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:60] + "-", dir=base))
    return path


# ------------------------------------------------------------------------------------------- batches
# Many cases of one playbook and layout in ONE ansible-playbook run: each case gets its own copy of
# the layout's hosts (renamed "k<NN>.<host>"), in the layout's groups (so the validation play, with
# its default host pattern, runs on them) and in tier groups of its own ("k<NN>_db", "k<NN>_app",
# "k<NN>_web"), which the case's group (priority 100, like CASE_GROUP) names in pydeploy_db_hosts,
# pydeploy_app_hosts and pydeploy_web_hosts: the playbooks compute every tier list and every
# <role>_stack from those host variables (vars/stack.yml), so a case only ever sees its own hosts.
# The callback turns the validation play's any_errors_fatal off (PYDEPLOY_BATCH=1) and split_batch
# keeps, per case, the failures of the first task that failed on one of its hosts (what
# any_errors_fatal lets through); a case with a failure never reaches the plays after validation.
# Not batchable (run alone): extra vars (they apply to every host), cases that set the tier variables
# or name groups and other hosts themselves, layouts whose inventory variables do (inventories/prod
# lists groups['app'] etc.: in a batch those would hold every case's hosts), and multi-host cases
# (class 1), which keep proving the real any_errors_fatal.
BATCH_TIER_VARS = ("pydeploy_db_hosts", "pydeploy_app_hosts", "pydeploy_web_hosts")
# Compared across every host of the play (python_app_password_conflicts: app hosts of one database use
# one password); the members of a batch are copies of one machine, so a case that changes the password
# (directly or through the vault variable it is read from) would fail every other member too: run alone.
BATCH_CROSS_HOST_VARS = ("python_app_database_password",)
_OTHER_HOSTS = re.compile(r"\b(groups|hostvars|group_names|play_hosts|ansible_play_hosts\w*)\b")


def batch_name(index, host):
    return f"k{index:02d}.{host}"


def _names_other_hosts(text):
    return bool(_OTHER_HOSTS.search(text))


def batchable(layout, group_vars=None, host_vars=None, extra_vars=None):
    if extra_vars or layout not in LAYOUTS:
        return False
    repo = LAYOUTS[layout]["repo"]
    for path in sorted(repo.rglob("*")) if repo is not None else ():
        if path.is_file() and path.parent != repo and _names_other_hosts(path.read_text(errors="replace")):
            return False
    names = set(group_vars or {})
    for values in (host_vars or {}).values():
        names.update(values or {})
    if any(name in BATCH_CROSS_HOST_VARS or name.startswith("vault_") for name in names):
        return False
    return not names & set(BATCH_TIER_VARS) and not _names_other_hosts(json.dumps([group_vars, host_vars]))


def build_batch_inventory(workdir, layout, members):
    """An inventory with one copy of the layout's hosts per member ({group_vars, host_vars}), as above."""
    workdir = Path(workdir)
    spec = LAYOUTS[layout]
    hosts = {}
    fact_hosts = {}
    case_group_vars = {}
    host_vars = {}
    for index, member in enumerate(members):
        group = f"{CASE_GROUP}_k{index:02d}"
        tiers = {"db": f"k{index:02d}_db", "app": f"k{index:02d}_app", "web": f"k{index:02d}_web"}
        for name, host in spec["hosts"].items():
            new = batch_name(index, name)
            groups = list(host.get("groups", []))
            hosts[new] = {"groups": groups + [tiers[g] for g in groups if g in tiers] + [group],
                          "address": host["address"], "vars": host.get("vars", {})}
            fact_hosts[new] = (name, host)
        values = dict(member.get("group_vars") or {})
        values.update({f"pydeploy_{tier}_hosts": pattern for tier, pattern in tiers.items()})
        case_group_vars[group] = values
        for name, values in (member.get("host_vars") or {}).items():
            if name not in spec["hosts"]:
                raise ValueError(f"host_vars for {name}, which is not a host of the layout {layout}")
            host_vars[batch_name(index, name)] = values
    inv = workdir / "inventory"
    all_dir = _inventory_dir(inv, spec["repo"], ("group_vars",))
    groups = {}
    for name, host in hosts.items():
        for group in host["groups"]:
            groups.setdefault(group, {}).setdefault("hosts", {})[name] = None
    for name, host in hosts.items():
        entry = {"ansible_host": host["address"]}
        entry.update(host["vars"])
        groups[host["groups"][0]]["hosts"][name] = entry
    for group in case_group_vars:
        groups[group]["vars"] = {"ansible_group_priority": 100}
    document = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        "children": groups,
    }}
    (inv / "hosts.yml").write_text(yaml.safe_dump(document, sort_keys=False))
    (all_dir / "01_vault.yml").write_text(_dump(DUMMY_VAULT))
    for group, values in case_group_vars.items():
        (inv / "group_vars" / f"{group}.yml").write_text(_dump(values))
    for name, values in host_vars.items():
        (inv / "host_vars" / f"{name}.yml").write_text(_dump(values))
    cache = workdir / "facts"
    cache.mkdir(parents=True, exist_ok=True)
    prefix = _fact_cache_prefix()
    for new, (name, host) in fact_hosts.items():  # the facts of the host the case names
        data = facts(name, host["address"], debian=host.get("debian", "12"))
        data.update(host.get("facts", {}))
        (cache / f"{prefix}{new}").write_text(json.dumps({"__payload__": json.dumps(data)}))
    return Inventory(inv, hosts, cache)


def split_batch(run, layout, count):
    """One Run per member of a batch run, with the member's host names (and tier groups) as the case wrote them."""
    shared = [r for r in run.records if "host" not in r]
    out = []
    for index in range(count):
        prefix = f"k{index:02d}."
        mine = [r for r in run.records if str(r.get("host", "")).startswith(prefix)]
        failures = [r for r in mine if r["event"] in ("failed", "item_failed", "unreachable")]
        if failures:  # any_errors_fatal: the first failing task's failures end the run
            first = min(r["seq"] for r in failures)
            mine = [r for r in mine if r["event"] not in ("failed", "item_failed", "unreachable") or r["seq"] == first]
            records = [r for r in shared if r["event"] != "after_validation"] + mine
            rc = 2
        else:
            records = shared + mine
            rc = run.rc

        def unbatch(text, index=index):
            for name in LAYOUTS[layout]["hosts"]:
                text = text.replace(batch_name(index, name), name)
            for tier in ("db", "app", "web"):
                text = text.replace(f"k{index:02d}_{tier}", tier)
            return text

        records = json.loads(unbatch(json.dumps(records)))
        out.append(Run(rc, unbatch(_own_lines(run.stdout, index)), unbatch(_own_lines(run.stderr, index)), records,
                       run.seconds, run.command, run.cpu))
    return out


def _own_lines(text, index):
    """The lines of a batch's output that name no host of another member."""
    own = f"k{index:02d}."
    return "".join(line for line in text.splitlines(keepends=True)
                   if own in line or not re.search(r"\bk\d\d\.", line))


def run_batch(playbook, layout, members, workdir, timeout=1200):
    """Run several cases ({group_vars, host_vars}) of one playbook and layout at once; one Run per member."""
    inventory = build_batch_inventory(workdir, layout, members)
    run = run_playbook(playbook, inventory, workdir, env={"PYDEPLOY_BATCH": "1"}, timeout=timeout)
    return split_batch(run, layout, len(members))
