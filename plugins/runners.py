"""Test runners: ``local`` (this machine), ``podman`` (podman CLI), ``docker`` (SDK).

The container runners start one container per machine from an image (or a
Containerfile built offline from local images), copy the bundle in with one
archive, run ``python3 -m tenfra.testsuite`` in it once per test, and remove
the container when the machine is done: on success, on failure and on Ctrl-C.
Every container carries the labels ``tenfra.test=1`` and ``tenfra.run=<id>``,
so :meth:`cleanup` finds whatever an interrupted run left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

import attrs

from tenfra import hookimpl
from tenfra.errors import UserError
from tenfra.testsuite import (
    LABEL,
    PYTHON_FIX,
    RUN_LABEL,
    WORKDIR,
    Machine,
    TestRunner,
)

logger = logging.getLogger(__name__)

DEFAULT_IMAGE = "localhost/tenfra-test:bookworm"
PAYLOAD = f"{WORKDIR}/tenfra.pyz"
# Exit code of the probe when python3 exists but is older than tenfra needs.
_TOO_OLD = 3
_PROBE = [
    "-c",
    f"import sys; sys.exit(0 if sys.version_info >= (3, 9) else {_TOO_OLD})",
]


def _doc(description: str) -> dict[str, Any]:
    return {"description": description}


# -- local -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class LocalOptions:
    """Options of the ``local`` runner."""

    env: dict[str, str] = attrs.field(
        factory=dict, metadata=_doc("Extra environment for the tenfra process.")
    )


class LocalMachine(Machine):
    """This machine, with a private work folder."""

    def __init__(self, workdir: Path, env: Mapping[str, str]) -> None:
        self.name = "the local machine"
        self.workdir = str(workdir)
        self.python = (sys.executable,)
        self.env = dict(env)

    def put(self, local: Path, remote: str) -> None:
        shutil.copytree(local, remote, dirs_exist_ok=True, symlinks=True)

    def exec(
        self,
        argv: Sequence[str],
        *,
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> tuple[int, str, str]:
        full = dict(os.environ)
        full.update(env or {})
        try:
            done = subprocess.run(
                list(argv),
                capture_output=True,
                text=True,
                env=full,
                timeout=timeout,
                cwd=self.workdir,
            )
        except subprocess.TimeoutExpired as exc:
            raise TimeoutError(str(exc)) from None
        except FileNotFoundError:
            return 127, "", f"{argv[0]}: command not found"
        return done.returncode, done.stdout, done.stderr

    def get(self, remote: str, local: Path) -> None:
        shutil.copyfile(remote, local)


class LocalRunner(TestRunner):
    """Run tests on this machine, with the running tenfra installation.

    Only for harmless recipes: nothing resets this machine between tests.
    """

    name = "local"
    Options = LocalOptions
    needs_payload = False

    @contextlib.contextmanager
    def machine(self, label: str) -> Iterator[Machine]:
        workdir = Path(tempfile.mkdtemp(prefix=f"tenfra-test-{label}-"))
        try:
            yield LocalMachine(workdir, self.options.env)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


# -- options shared by the container runners ------------------------------------


@attrs.frozen(kw_only=True)
class ContainerOptions:
    """Options every container runner understands."""

    image: str = attrs.field(
        default=DEFAULT_IMAGE,
        metadata=_doc("The image to start (ignored with ``containerfile``)."),
    )
    containerfile: Optional[str] = attrs.field(
        default=None,
        metadata=_doc(
            "A Containerfile to build the image from, relative to the suite; "
            "built without pulling, so its base image must exist locally."
        ),
    )
    context: Optional[str] = attrs.field(
        default=None,
        metadata=_doc("The build context (default: the Containerfile's folder)."),
    )
    env: dict[str, str] = attrs.field(
        factory=dict, metadata=_doc("Environment variables set in the container.")
    )
    pass_env: list[str] = attrs.field(
        factory=list,
        metadata=_doc("Names of variables copied from this environment."),
    )
    ready: Optional[str] = attrs.field(
        default=None,
        metadata=_doc("A shell command retried until it succeeds before tests run."),
    )
    ready_timeout: float = attrs.field(
        default=60.0, metadata=_doc("Seconds to wait for ``ready``.")
    )
    command: list[str] = attrs.field(
        factory=lambda: ["sleep", "infinity"],
        metadata=_doc("The command that keeps the container running."),
    )
    python: str = attrs.field(
        default="python3", metadata=_doc("The Python interpreter in the image.")
    )

    def environment(self) -> dict[str, str]:
        env = {name: os.environ[name] for name in self.pass_env if name in os.environ}
        env.update(self.env)
        return env


@attrs.frozen(kw_only=True)
class PodmanOptions(ContainerOptions):
    """Options of the ``podman`` runner."""

    run_args: list[str] = attrs.field(
        factory=list,
        metadata=_doc("Extra arguments for ``podman run`` (``--network=none``...)."),
    )


@attrs.frozen(kw_only=True)
class DockerOptions(ContainerOptions):
    """Options of the ``docker`` runner."""

    run_options: dict[str, Any] = attrs.field(
        factory=dict,
        metadata=_doc(
            "Extra keyword arguments of the docker SDK's ``containers.create`` "
            "(``network_mode``, ``mem_limit``...)."
        ),
    )


def _build_tag(containerfile: Path, context: Path) -> str:
    """An image tag that changes when the Containerfile or its context changes."""
    digest = hashlib.sha256(containerfile.read_bytes())
    for path in sorted(context.rglob("*")):
        if path.is_file() and ".git" not in path.parts:
            digest.update(str(path.relative_to(context)).encode())
            digest.update(path.read_bytes())
    return f"localhost/tenfra-test-build:{digest.hexdigest()[:16]}"


def _containerfile(options: ContainerOptions, suite_dir: Path) -> tuple[Path, Path]:
    assert options.containerfile is not None
    path = (suite_dir / options.containerfile).resolve()
    if not path.is_file():
        raise UserError(
            f"The Containerfile {options.containerfile!r} does not exist (looked "
            f"for {path}); fix 'containerfile' in the suite's runner options."
        )
    context = (
        (suite_dir / options.context).resolve() if options.context else path.parent
    )
    if not context.is_dir():
        raise UserError(
            f"The build context {options.context!r} is not a folder (looked for "
            f"{context}); fix 'context' in the suite's runner options."
        )
    return path, context


def _no_python(runner: str, image: str, detail: str) -> UserError:
    return UserError(
        f"The image {image} has no usable python3 ({detail}); the {runner} runner "
        f"runs tenfra inside the container with the image's own python3. Fix: "
        f"{PYTHON_FIX}."
    )


# -- podman ----------------------------------------------------------------------------


def _podman(
    argv: Sequence[str],
    *,
    timeout: Optional[float] = None,
    check: bool = False,
    what: str = "",
) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            ["podman", *argv], capture_output=True, text=True, timeout=timeout
        )
    except FileNotFoundError:
        raise UserError(
            "The podman runner needs the podman command, which is not installed; "
            "install podman (apt-get install podman runc) or use another runner."
        ) from None
    if check and done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise UserError(
            f"podman could not {what}: {' | '.join(detail[-4:]) or 'no output'}."
        )
    return done


class PodmanMachine(Machine):
    """A container started with the podman CLI."""

    def __init__(self, container: str, name: str, python: str) -> None:
        self.container = container
        self.name = f"podman container {name}"
        self.workdir = WORKDIR
        self.python = (python,)
        self.env = {"PYTHONPATH": PAYLOAD, "PYTHONDONTWRITEBYTECODE": "1"}

    def put(self, local: Path, remote: str) -> None:
        # `podman cp DIR/. CONTAINER:REMOTE` copies the whole folder in one go;
        # under heavy load podman sometimes fails with a closed pipe, so the
        # same content goes once more as a tar stream on standard input.
        errors = []
        done = _podman(["cp", f"{local}/.", f"{self.container}:{remote}"])
        if done.returncode == 0:
            return
        errors.append(done.stderr.strip())
        logger.warning("podman cp into %s failed: %s", self.name, errors[-1])
        streamed = subprocess.run(
            ["podman", "cp", "-", f"{self.container}:/"],
            input=_tar_folder(local, remote),
            capture_output=True,
        )
        if streamed.returncode == 0:
            return
        errors.append(streamed.stderr.decode(errors="replace").strip())
        raise UserError(
            f"podman could not copy the test bundle into {self.name}: "
            f"{' | '.join(errors)}."
        )

    def exec(
        self,
        argv: Sequence[str],
        *,
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> tuple[int, str, str]:
        flags: list[str] = []
        for key, value in (env or {}).items():
            flags += ["-e", f"{key}={value}"]
        try:
            done = _podman(["exec", *flags, self.container, *argv], timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise TimeoutError(str(exc)) from None
        return done.returncode, done.stdout, done.stderr

    def get(self, remote: str, local: Path) -> None:
        _podman(
            ["cp", f"{self.container}:{remote}", str(local)],
            check=True,
            what=f"copy {remote} out of {self.name}",
        )


class PodmanRunner(TestRunner):
    """Run tests in containers started with the podman CLI (``CONTAINERS_CONF``)."""

    name = "podman"
    Options = PodmanOptions
    _built: dict[str, str] = {}
    _build_lock = threading.Lock()

    def prepare(self) -> None:
        self.image = self.options.image
        if self.options.containerfile is not None:
            self.image = self._build()

    def _build(self) -> str:
        path, context = _containerfile(self.options, self.suite_dir)
        tag = _build_tag(path, context)
        with self._build_lock:
            if tag in self._built:
                return tag
            if _podman(["image", "exists", tag]).returncode != 0:
                logger.info("building %s from %s", tag, path)
                _podman(
                    [
                        "build",
                        "--pull=never",
                        "--quiet",
                        "-f",
                        str(path),
                        "-t",
                        tag,
                        str(context),
                    ],
                    check=True,
                    what=f"build {path} (its base image must exist locally; the "
                    "build never pulls)",
                )
            self._built[tag] = tag
        return tag

    @contextlib.contextmanager
    def machine(self, label: str) -> Iterator[Machine]:
        name = f"tenfra-test-{self.run_id}-{label}-{uuid.uuid4().hex[:6]}"
        argv = [
            "run",
            "-d",
            "--name",
            name,
            "--label",
            f"{LABEL}=1",
            "--label",
            f"{RUN_LABEL}={self.run_id}",
        ]
        for key, value in self.options.environment().items():
            argv += ["-e", f"{key}={value}"]
        argv += [*self.options.run_args, self.image, *self.options.command]
        started: Optional[str] = None
        try:
            done = _podman(argv)
            if done.returncode != 0:
                detail = " | ".join(done.stderr.strip().splitlines()[-3:])
                raise UserError(
                    f"podman could not start a container from {self.image}: "
                    f"{detail or 'no output'}. Check the image name (podman images) "
                    "and the runner's runArgs."
                )
            started = done.stdout.strip().splitlines()[-1]
            machine = PodmanMachine(started, name, self.options.python)
            _check_python(machine, "podman", self.image)
            _wait_ready(machine, self.options)
            yield machine
        finally:
            # Removed by name: also covers a container podman created but failed
            # to start.
            _podman(["rm", "-f", "-t", "0", started or name])

    @classmethod
    def cleanup(cls, run_id: str) -> int:
        if shutil.which("podman") is None:
            return 0
        done = _podman(["ps", "-aq", "--filter", f"label={RUN_LABEL}={run_id}"])
        ids = done.stdout.split()
        if ids:
            _podman(["rm", "-f", "-t", "0", *ids])
        return len(ids)


def _tar_folder(local: Path, remote: str) -> bytes:
    """A tar archive of ``local``'s contents placed under ``remote`` (absolute)."""
    buffer = io.BytesIO()
    prefix = remote.strip("/")
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(str(local), arcname=prefix)
    return buffer.getvalue()


def _check_python(machine: Machine, runner: str, image: str) -> None:
    try:
        code, out, err = machine.exec([machine.python[0], *_PROBE], timeout=60)
    except TimeoutError:
        raise _no_python(runner, image, "python3 did not answer in 60 s") from None
    if code == _TOO_OLD:
        raise _no_python(runner, image, "it is older than Python 3.9")
    if code != 0:
        detail = " ".join((err or out).strip().splitlines()[-1:]) or f"exit {code}"
        raise _no_python(runner, image, detail)


def _wait_ready(machine: Machine, options: ContainerOptions) -> None:
    if options.ready is None:
        return
    deadline = time.monotonic() + options.ready_timeout
    last = ""
    while True:
        try:
            code, out, err = machine.exec(["sh", "-c", options.ready], timeout=30)
        except TimeoutError:
            code, out, err = -1, "", "timed out after 30 s"
        if code == 0:
            return
        last = " | ".join((err or out).strip().splitlines()[-2:]) or f"exit {code}"
        if time.monotonic() >= deadline:
            raise UserError(
                f"The readiness check {options.ready!r} did not succeed within "
                f"{options.ready_timeout:g} s in {machine.name} (last: {last}); fix "
                "the check or raise readyTimeout."
            )
        time.sleep(0.5)


# -- docker ----------------------------------------------------------------------------


def _docker_client() -> Any:
    try:
        import docker
    except ImportError:
        raise UserError(
            "The docker runner needs the docker SDK; install it with "
            "pip install 'tenfra[docker]'."
        ) from None
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        where = os.environ.get("DOCKER_HOST", "the default socket")
        raise UserError(
            f"The docker runner cannot reach the Docker Engine API at {where}: "
            f"{exc}. Start the daemon (or 'podman system service') and set "
            "DOCKER_HOST."
        ) from None
    return client


class DockerMachine(Machine):
    """A container started through the Docker Engine API."""

    def __init__(self, container: Any, name: str, python: str) -> None:
        self.container = container
        self.name = f"docker container {name}"
        self.workdir = WORKDIR
        self.python = (python,)
        self.env = {"PYTHONPATH": PAYLOAD, "PYTHONDONTWRITEBYTECODE": "1"}

    def put(self, local: Path, remote: str) -> None:
        import docker

        try:
            self.container.put_archive("/", _tar_folder(local, remote))
        except docker.errors.APIError as exc:
            raise UserError(
                f"Could not copy the test bundle into {self.name}: {exc}."
            ) from None

    def exec(
        self,
        argv: Sequence[str],
        *,
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> tuple[int, str, str]:
        import docker

        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["result"] = self.container.exec_run(
                    list(argv), demux=True, environment=dict(env or {})
                )
            except Exception as exc:  # handed to the calling thread
                box["error"] = exc

        # exec_run has no timeout: wait for it in a helper thread.
        worker = threading.Thread(target=target, daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            raise TimeoutError(f"{argv[0]} did not finish within {timeout} s")
        error = box.get("error")
        if isinstance(error, docker.errors.APIError):
            message = str(getattr(error, "explanation", None) or error)
            return 127, "", message
        if error is not None:  # the connection broke or the container vanished
            return 127, "", f"the Docker Engine API call failed: {error}"
        result = box["result"]
        out, err = result.output if result.output is not None else (None, None)
        return (
            int(result.exit_code if result.exit_code is not None else -1),
            (out or b"").decode("utf-8", errors="replace"),
            (err or b"").decode("utf-8", errors="replace"),
        )

    def get(self, remote: str, local: Path) -> None:
        stream, _ = self.container.get_archive(remote)
        data = b"".join(stream)
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            member = archive.getmembers()[0]
            handle = archive.extractfile(member)
            if handle is None:
                raise UserError(f"{remote} in {self.name} is not a regular file.")
            local.write_bytes(handle.read())


class DockerRunner(TestRunner):
    """Run tests in containers through the Docker Engine API (``DOCKER_HOST``)."""

    name = "docker"
    Options = DockerOptions
    _built: dict[str, str] = {}
    _build_lock = threading.Lock()

    def prepare(self) -> None:
        self.client = _docker_client()
        self.image = self.options.image
        if self.options.containerfile is not None:
            self.image = self._build()

    def _build(self) -> str:
        import docker

        path, context = _containerfile(self.options, self.suite_dir)
        tag = _build_tag(path, context)
        with self._build_lock:
            if tag in self._built:
                return tag
            try:
                self.client.images.get(tag)
            except docker.errors.ImageNotFound:
                logger.info("building %s from %s", tag, path)
                try:
                    self.client.images.build(
                        path=str(context),
                        dockerfile=str(path),
                        tag=tag,
                        pull=False,
                        rm=True,
                    )
                except (docker.errors.BuildError, docker.errors.APIError) as exc:
                    raise UserError(
                        f"Could not build {path}: {exc}. Its base image must exist "
                        "locally; the build never pulls."
                    ) from None
            self._built[tag] = tag
        return tag

    @contextlib.contextmanager
    def machine(self, label: str) -> Iterator[Machine]:
        import docker

        name = f"tenfra-test-{self.run_id}-{label}-{uuid.uuid4().hex[:6]}"
        container: Any = None
        try:
            try:
                container = self.client.containers.create(
                    self.image,
                    list(self.options.command),
                    name=name,
                    labels={LABEL: "1", RUN_LABEL: self.run_id},
                    environment=self.options.environment(),
                    detach=True,
                    **self.options.run_options,
                )
                container.start()
            except docker.errors.ImageNotFound:
                raise UserError(
                    f"The image {self.image} was not found by the Docker Engine at "
                    f"{os.environ.get('DOCKER_HOST', 'the default socket')}; build "
                    "or pull it, or fix 'image'."
                ) from None
            except (docker.errors.APIError, TypeError) as exc:
                raise UserError(
                    f"The docker runner could not start a container from "
                    f"{self.image}: {exc}. Check the image and runOptions."
                ) from None
            machine = DockerMachine(container, name, self.options.python)
            _check_python(machine, "docker", self.image)
            _wait_ready(machine, self.options)
            yield machine
        finally:
            _docker_remove(self.client, container if container is not None else name)

    @classmethod
    def cleanup(cls, run_id: str) -> int:
        try:
            import docker
        except ImportError:
            return 0
        try:
            client = docker.from_env()
            found = client.containers.list(
                all=True, filters={"label": f"{RUN_LABEL}={run_id}"}
            )
        except docker.errors.DockerException:
            return 0
        for container in found:
            _docker_remove(client, container)
        return len(found)


def _docker_remove(client: Any, container: Any) -> None:
    """Kill and remove a container (or a container name), ignoring absence."""
    import docker

    with contextlib.suppress(docker.errors.DockerException):
        if isinstance(container, str):
            container = client.containers.get(container)
        with contextlib.suppress(docker.errors.DockerException):
            container.kill()
        container.remove(force=True)


@hookimpl
def tenfra_add_test_runners(registry: Any) -> None:
    registry.add_test_runner(LocalRunner)
    registry.add_test_runner(PodmanRunner)
    registry.add_test_runner(DockerRunner)
