# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the collection's playbooks against the sandbox and read their results (json callback)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INVENTORY = os.path.join(REPO_ROOT, "inventories", "sandbox", "hosts.yml")


def _ansible(command, argv, callback):
    """Run one of the venv's Ansible commands from the checkout; (returncode, stdout, stdout + stderr)."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO_ROOT, "ansible.cfg"),
               ANSIBLE_STDOUT_CALLBACK=callback, ANSIBLE_NOCOLOR="1")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    res = subprocess.run([os.path.join(os.path.dirname(sys.executable), command)] + list(argv),
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    return res.returncode, res.stdout, res.stdout + res.stderr


def playbook(name, *args, inventory=INVENTORY):
    """Run playbooks/<name>; (returncode, parsed json callback output, raw text)."""
    rc, stdout, raw = _ansible("ansible-playbook", ["-i", inventory, os.path.join(REPO_ROOT, "playbooks", name)]
                               + list(args), "ansible.posix.json")
    try:
        data = json.loads(stdout[stdout.index("{"):])
    except ValueError:
        data = {}
    return rc, data, raw


def playbook_text(name, *args, inventory=INVENTORY):
    """Run playbooks/<name> with the default callback, what a user (or an AWX job log) sees;
    (returncode, output)."""
    rc, dummy, raw = _ansible("ansible-playbook", ["-i", inventory, os.path.join(REPO_ROOT, "playbooks", name)]
                              + list(args), "ansible.builtin.default")
    return rc, raw


def module(name, args, *extra):
    """Run one module on localhost (``ansible localhost -m``), default callback; (returncode, output)."""
    rc, dummy, raw = _ansible("ansible", ["localhost", "-c", "local", "-e", "ansible_python_interpreter="
                                          + sys.executable, "-m", name, "-a", json.dumps(args)] + list(extra),
                              "ansible.builtin.default")
    return rc, raw


def changed_tasks(data):
    """['task name on host', ...] of every task result that reported changed."""
    return ["%s on %s" % (t["task"]["name"], h) for p in data.get("plays", []) for t in p["tasks"]
            for h, r in t["hosts"].items() if r.get("changed")]


def failures(data):
    """(host, msg) of every failed task result, loop items included."""
    out = []
    for play in data.get("plays", []):
        for task in play["tasks"]:
            for host, r in task["hosts"].items():
                if r.get("failed"):
                    out.append((host, r.get("msg", "")))
                    out.extend((host, i.get("msg", "")) for i in r.get("results", []) if i.get("failed"))
    return out


def failure_messages(data):
    """msg of every failed task result, loop items included."""
    return [msg for dummy, msg in failures(data)]


class InventoryCopy(object):
    """A changed copy of the sandbox inventory, at the same depth below the checkout
    (its paths are relative to inventory_dir); ``remove()`` deletes it."""

    def __init__(self, tmp_path):
        self.dir = os.path.join(REPO_ROOT, "inventories", "_test_" + tmp_path.name)
        os.makedirs(self.dir, exist_ok=True)  # one an interrupted session left is overwritten
        self.path = os.path.join(self.dir, "hosts.yml")

    def write(self, mutate):
        """``mutate(group)`` changes group mesh_clusters (its 'vars' and 'hosts'); returns the path."""
        with open(INVENTORY) as f:
            inv = yaml.safe_load(f)
        mutate(inv["all"]["children"]["mesh_clusters"])
        with open(self.path, "w") as f:
            yaml.safe_dump(inv, f)
        return self.path

    def remove(self):
        shutil.rmtree(self.dir)
