"""A first run, as a new user makes it: a fresh copy of the checkout, `make run`, then the
manage.py commands that the README and the `make run` banner give, typed as written in
another shell that has none of the project's variables set.

`make run` is its last step here, scripts/run-dev: the step before it only installs the
virtualenv, which the copy borrows from this test run (a symlink), as a developer's
checkout has its own.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.live import ROOT, free_port

pytestmark = [pytest.mark.processes]

VENV = Path(sys.prefix)
# "(create an operator: .venv/bin/python manage.py createsuperuser)", "python manage.py
# migrate": a command runs up to a closing parenthesis, a backtick or the end of the line.
MANAGE_COMMAND = re.compile(r"((?:[\w.-]+/)*python3? manage\.py [^)`\n]*)")
OPERATOR = ("firstop", "Opera-tor-pass-7319")


def fresh_checkout(dest: Path) -> Path:
    """What `git clone` of this working tree would give: tracked files and new files that
    are not ignored, so no .env.dev, database or collected static files."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        name = raw.decode()
        source = ROOT / name
        if name == ".venv" or name.startswith(".venv/") or not source.is_file():
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    (dest / ".venv").symlink_to(VENV, target_is_directory=True)
    return dest


def new_user_env(**extra: str) -> dict[str, str]:
    """A new shell: none of the project's variables (nor the test run's)."""
    drop = ("DJANGO_", "VOICEROOM_", "PYTEST", "DATABASE_URL", "REDIS_URL", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    # Other tests' processes must not pick up this checkout's .venv through PATH.
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep) if not p.startswith(str(VENV))
    )
    env.update(extra)
    return env


class DevServer:
    """scripts/run-dev in the copy: what `make run` starts."""

    def __init__(self, checkout: Path) -> None:
        self.port = free_port()
        self.log = checkout / "run-dev.log"
        self.proc = subprocess.Popen(
            ["scripts/run-dev"],
            cwd=checkout,
            env=new_user_env(PORT=str(self.port)),
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"make run exited early:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"make run did not serve /healthz:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def answer(prompt: str) -> str | None:
    """What a person types at createsuperuser's prompts."""
    prompt = prompt.lower()
    if prompt.startswith("username"):
        return OPERATOR[0]
    if prompt.startswith("password"):
        return OPERATOR[1]
    if prompt.startswith(("email", "display name")):
        return ""
    return None


def run_in_terminal(command: str, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run `command` in a shell on a terminal (a pty), answering its prompts."""
    leader, follower = os.openpty()
    proc = subprocess.Popen(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        start_new_session=True,  # no controlling terminal: getpass reads the pty (stdin)
    )
    os.close(follower)
    output = b""
    answered = 0
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # EIO: the command closed the terminal (it exited)
                    break
                if not chunk:
                    break
                output += chunk
                prompts = re.findall(rb"([A-Za-z][\w ()]*): $", output[answered:])
                if prompts:
                    reply = answer(prompts[-1].decode())
                    if reply is None:
                        raise AssertionError(f"unexpected prompt:\n{output.decode()}")
                    os.write(leader, reply.encode() + b"\n")
                    answered = len(output)
            elif proc.poll() is not None:
                break
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        os.close(leader)
    return proc.returncode, output.decode(errors="replace")


def documented_commands(*texts: str) -> list[str]:
    found: list[str] = []
    for text in texts:
        for command in MANAGE_COMMAND.findall(text):
            command = command.strip()
            if command not in found:
                found.append(command)
    return found


def admin_sign_in(base: str, username: str, password: str) -> str:
    """Sign in to /admin/ as a browser does (CSRF cookie and token); the page reached."""
    import requests

    session = requests.Session()
    form = session.get(f"{base}/admin/login/?next=/admin/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    answer = session.post(
        f"{base}/admin/login/?next=/admin/",
        data={
            "csrfmiddlewaretoken": token,
            "username": username,
            "password": password,
            "next": "/admin/",
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.text[:2000]
    assert answer.url == f"{base}/admin/", answer.text[:2000]
    return answer.text


def test_after_make_run_the_readme_and_banner_commands_work_as_written(tmp_path):
    checkout = fresh_checkout(tmp_path / "voiceroom")
    readme = (checkout / "README.md").read_text()

    server = DevServer(checkout)
    try:
        banner = server.output()
    finally:
        server.stop()
    assert "voiceroom is starting" in banner, banner
    dev_env = checkout / ".env.dev"
    assert stat.S_IMODE(dev_env.stat().st_mode) == 0o600

    commands = documented_commands(readme, banner)
    # The operator's account is the reason people reach for manage.py first.
    assert ".venv/bin/python manage.py createsuperuser" in commands, commands
    # README's other commands say to activate the virtualenv (`python`, not .venv/bin/...).
    activated = new_user_env(PATH=f"{checkout / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}")
    for command in commands:
        env = activated if command.startswith("python") else new_user_env()
        code, output = run_in_terminal(command, checkout, env)
        assert code == 0, f"`{command}` failed:\n{output}"
        assert "ImproperlyConfigured" not in output, output

    # The operator made with those commands signs in to the admin of the next `make run`.
    server = DevServer(checkout)
    try:
        page = admin_sign_in(server.url, *OPERATOR)
    finally:
        server.stop()
    assert "Site administration" in page


# --- the rule: .env.dev is for manage.py in an unconfigured shell, nothing else -------------

SHOW = "from django.conf import settings; print(settings.DEBUG, settings.SECRET_KEY)"


@pytest.fixture
def checkout_with_dev_env(tmp_path) -> Path:
    checkout = fresh_checkout(tmp_path / "voiceroom")
    (checkout / ".env.dev").write_text(
        "DJANGO_SECRET_KEY=the-dev-key-" + "d" * 40 + "\nDJANGO_DEBUG=1\n"
    )
    return checkout


def _run(checkout: Path, args: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV / "bin" / "python"), *args],
        cwd=checkout,
        env=new_user_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_manage_py_uses_env_dev_only_when_no_secret_key_is_set(checkout_with_dev_env):
    dev = _run(checkout_with_dev_env, ["manage.py", "shell", "-v", "0", "-c", SHOW])
    assert dev.returncode == 0, dev.stderr
    assert dev.stdout.split() == ["True", "the-dev-key-" + "d" * 40]
    assert ".env.dev" in dev.stderr  # said, not silent

    # A configured environment (a production node's) is used as it is: not the dev key,
    # and not the dev file's DJANGO_DEBUG=1 either.
    prod_key = "the-production-key-" + "p" * 40
    prod = _run(
        checkout_with_dev_env,
        ["manage.py", "shell", "-v", "0", "-c", SHOW],
        DJANGO_SECRET_KEY=prod_key,
    )
    assert prod.returncode == 0, prod.stderr
    assert prod.stdout.split() == ["False", prod_key]
    assert ".env.dev" not in prod.stderr


def test_a_server_never_reads_env_dev(checkout_with_dev_env):
    # daphne and uvicorn load voiceroom.asgi: without a key it refuses, .env.dev or not.
    done = _run(checkout_with_dev_env, ["-c", "import voiceroom.asgi"])
    assert done.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in done.stderr


def test_manage_py_without_a_key_says_what_is_missing(tmp_path):
    # No .env.dev and no DJANGO_SECRET_KEY (a shell before `make run`): every command
    # stops with the settings' own message, not Django's AppRegistryNotReady.
    checkout = fresh_checkout(tmp_path / "voiceroom")
    for args in (["makemigrations", "--check", "--dry-run"], ["migrate"], ["check"]):
        done = _run(checkout, ["manage.py", *args], DJANGO_SECRET_KEY="")
        assert done.returncode != 0
        assert "DJANGO_SECRET_KEY is not set" in done.stderr, done.stderr
        assert "AppRegistryNotReady" not in done.stderr
        assert "Traceback" not in done.stderr
    # help needs no settings and still answers.
    helped = _run(checkout, ["manage.py", "help"], DJANGO_SECRET_KEY="")
    assert helped.returncode == 0, helped.stderr
    assert "makemigrations" in helped.stdout
