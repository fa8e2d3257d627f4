"""Services as containers, through the Docker Engine API (Docker Engine, Podman's API service, Colima).

Everything a cluster creates carries the labels ``localdev=1`` and ``localdev.cluster=<id>``, where the id
is derived from the LOCALDEV_HOME path, so two clusters on one engine never touch each other's containers,
volumes or network. Per cluster:

- a container ``localdev-<id>-<service>`` on a private network ``localdev-<id>``, where the service's
  name is an alias (FerretDB reaches ``postgres:5432``);
- named volumes ``localdev-<id>-<volume>`` for data: ``down`` removes the containers and keeps them,
  ``down --purge`` removes them too;
- ports published on the configured host (127.0.0.1) only.

Readiness is the cluster's business (a real request from the host): engines do not all run healthchecks
(Podman without systemd never does). A container that exited is reported by `state` and replaced by `start`;
its output is kept in logs/<service>.log before it is removed.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from localdev.errors import BadInput, LocalDevError
from localdev.runtimes.base import ContainerSpec, ProcessState
from localdev.state import StateDir

LABEL = "localdev"
STOP_TIMEOUT = 20  # seconds of grace before the engine sends SIGKILL


class EngineUnavailable(LocalDevError):
    pass


def cluster_id(home: Path) -> str:
    """Stable per LOCALDEV_HOME, short enough for container names."""
    return hashlib.sha256(str(Path(home).absolute()).encode()).hexdigest()[:10]


def spec_digest(spec: ContainerSpec) -> str:
    """Changes whenever the container would have to be created differently (image, env, ports...)."""
    data = json.dumps(spec.__dict__, sort_keys=True, default=str)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


class DockerRuntime:
    name = "docker"

    def __init__(self, state: StateDir, host: str = "127.0.0.1", labels: dict[str, str] | None = None):
        self.dirs = state
        self.host = host
        self.extra_labels = labels or {}  # e.g. a test session's, which its reaper removes by
        self.cluster_id = cluster_id(state.home)
        self.network_name = f"localdev-{self.cluster_id}"
        self._client = None
        self._lock = threading.Lock()  # services of one wave start in parallel threads

    def endpoint(self, name: str, options: dict) -> None:
        """Services run here, where their own config puts them."""

    def verify(self, service) -> None:
        """Nothing beyond the services' own checks."""

    def spec_for(self, service) -> ContainerSpec:
        return service.container_spec()

    def prepare(self, service) -> None:
        """Nothing ahead of a start: the image is pulled (or found) by start() itself."""

    # -- the engine ---------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            from localdev.runtimes import engine_url

            try:
                import docker
            except ImportError:
                raise BadInput("the docker runtime needs the docker package (a dependency of localdev "
                                        "that this environment lacks): pip install docker") from None
            url = engine_url()
            try:
                client = docker.DockerClient(base_url=url, timeout=120)
                client.ping()
            except Exception as exc:
                raise EngineUnavailable(
                    f"no Docker Engine API answers at {url} ({exc.__class__.__name__}): start Docker, Colima "
                    "(colima start) or Podman's API service (podman system service), set DOCKER_HOST, "
                    "or use the native runtime (localdev up --runtime native)") from None
            self._client = client
        return self._client

    def _labels(self, service: str | None = None) -> dict[str, str]:
        labels = {**self.extra_labels, LABEL: "1", f"{LABEL}.cluster": self.cluster_id,
                  f"{LABEL}.home": str(self.dirs.home)}
        if service:
            labels[f"{LABEL}.service"] = service
        return labels

    def container_name(self, service: str) -> str:
        return f"localdev-{self.cluster_id}-{service}"

    def volume_name(self, volume: str) -> str:
        return f"localdev-{self.cluster_id}-{volume}"

    def _container(self, service: str):
        import docker.errors

        try:
            return self.client.containers.get(self.container_name(service))
        except docker.errors.NotFound:
            return None

    # -- start ----------------------------------------------------------------
    def start(self, name: str, spec: ContainerSpec) -> int | None:
        import docker.errors

        digest = spec_digest(spec)
        container = self._container(name)
        if container is not None:
            if container.status == "running" and container.labels.get(f"{LABEL}.spec") == digest:
                return self._pid(container)
            # Dead, or made from another spec (image or config changed): replace it, keeping its output.
            self._archive_logs(name, container)
            self._remove(container)
        from localdev.ports import port_in_use, port_taken

        publish = spec.publish_host or self.host
        for port in spec.ports.values():
            if port_in_use(publish, port):
                raise port_taken(name, publish, port)
        self._ensure_image(name, spec.image)
        with self._lock:
            network = self._ensure_network()
            volumes = {self._ensure_volume(vol, name): {"bind": path, "mode": "rw"}
                       for vol, path in spec.volumes.items()}
        try:
            container = self.client.containers.run(
                spec.image, command=spec.command or None, name=self.container_name(name), detach=True,
                environment=spec.env, user=spec.user or None, labels={**self._labels(name), f"{LABEL}.spec": digest},
                ports={f"{cport}/tcp": (publish, hport) for cport, hport in spec.ports.items()},
                volumes=volumes, network=network.name,
                networking_config={network.name: self.client.api.create_endpoint_config(aliases=[name])})
        except docker.errors.APIError as exc:
            leftover = self._container(name)
            if leftover is not None:
                self._remove(leftover)
            raise LocalDevError(f"the engine could not start {name} from {spec.image}: {_explain(exc)}") from None
        container.reload()
        return self._pid(container)

    def _ensure_image(self, service: str, image: str) -> None:
        import docker.errors

        try:
            self.client.images.get(image)
            return
        except docker.errors.ImageNotFound:
            pass
        repo, tag = _split_image(image)
        show = _Progress(f"pulling {image}") if sys.stderr.isatty() else None
        try:
            for event in self.client.api.pull(repo, tag=tag, stream=True, decode=True):
                if "error" in event:
                    raise LocalDevError(event["error"])
                if show:
                    show.update(event)
        except (docker.errors.APIError, LocalDevError) as exc:
            raise LocalDevError(
                f"could not pull image {image} for {service}: {_explain(exc)}; check the network, log in to the "
                f"registry (docker login), or point [services.{service}] image at a mirror or a local image") from None
        finally:
            if show:
                show.done()

    def _ensure_network(self):
        import docker.errors

        for net in self.client.networks.list(names=[self.network_name]):
            if net.name == self.network_name:
                return net
        try:
            return self.client.networks.create(self.network_name, driver="bridge", labels=self._labels())
        except docker.errors.APIError:  # made meanwhile by another process
            return self.client.networks.get(self.network_name)

    def _ensure_volume(self, volume: str, service: str) -> str:
        import docker.errors

        full = self.volume_name(volume)
        try:
            self.client.volumes.get(full)
        except docker.errors.NotFound:
            try:
                self.client.volumes.create(full, labels=self._labels(service))
            except docker.errors.APIError:  # made meanwhile by another process
                self.client.volumes.get(full)
        return full

    # -- state ------------------------------------------------------------------
    @staticmethod
    def _pid(container) -> int | None:
        return container.attrs.get("State", {}).get("Pid") or None

    def state(self, name: str) -> ProcessState:
        container = self._container(name)
        if container is None:
            return ProcessState(False, None, "not started")
        st = container.attrs.get("State", {})
        short = container.id[:12]
        if container.status == "running":
            return ProcessState(True, self._pid(container), f"running (container {short})")
        detail = f"container {short} {container.status}"
        if container.status in ("exited", "dead"):
            detail += f" with code {st.get('ExitCode')}" + (" (out of memory)" if st.get("OOMKilled") else "")
            if st.get("Error"):
                detail += f": {st['Error']}"
        return ProcessState(False, None, detail)

    def instance(self, name: str) -> str | None:
        return None  # each answer would be a request to the engine, no cheaper than one to the service

    # -- stop ---------------------------------------------------------------------
    def stop(self, name: str, spec: ContainerSpec | None = None) -> None:
        """Stop and remove the container; its volumes stay (purge removes them)."""
        container = self._container(name)
        if container is None:
            return
        if container.status == "running":
            try:
                container.stop(timeout=STOP_TIMEOUT)
            except Exception:  # gone meanwhile: removal below settles it
                pass
        self._archive_logs(name, container)
        self._remove(container)

    def kill(self, name: str) -> None:
        """Kill without grace (tests and fault injection)."""
        container = self._container(name)
        if container is not None and container.status == "running":
            container.kill()

    def _remove(self, container) -> None:
        import docker.errors

        try:
            container.remove(v=True, force=True)  # v: anonymous volumes the image declares
        except docker.errors.NotFound:
            pass

    def purge(self, service_names: list[str] | None = None) -> None:
        """Remove everything of this cluster on the engine: containers, volumes (its data), network."""
        import docker.errors

        labels = [f"{LABEL}.cluster={self.cluster_id}"]
        for container in self.client.containers.list(all=True, filters={"label": labels}):
            self._remove(container)
        for volume in self.client.volumes.list(filters={"label": labels}):
            try:
                volume.remove(force=True)
            except docker.errors.NotFound:
                pass
        for net in self.client.networks.list(names=[self.network_name]):
            if net.name == self.network_name:
                try:
                    net.remove()
                except docker.errors.APIError:
                    pass

    # -- logs ------------------------------------------------------------------------
    def log_path(self, name: str) -> Path:
        """Output of containers already removed (the running one's comes from the engine)."""
        return self.dirs.log(name)

    def _archive_logs(self, name: str, container) -> None:
        try:
            data = container.logs(stdout=True, stderr=True, timestamps=False)
        except Exception:
            return
        if not data:
            return
        path = self.log_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as fh:
            fh.write(f"--- localdev: output of container {container.id[:12]} ({container.status}) ---\n".encode())
            fh.write(data if data.endswith(b"\n") else data + b"\n")

    def logs(self, name: str, tail: int | None = None, follow: bool = False) -> Iterator[str]:
        container = self._container(name)
        if container is None:
            path = self.log_path(name)
            if path.exists():
                lines = path.read_text(errors="replace").splitlines(keepends=True)
                yield from (lines[-tail:] if tail else lines)
            return
        stream = container.logs(stdout=True, stderr=True, stream=True, follow=follow, tail=tail if tail else "all")
        pending = b""
        for chunk in stream:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.decode(errors="replace") + "\n"
        if pending:
            yield pending.decode(errors="replace") + "\n"


def _split_image(image: str) -> tuple[str, str]:
    """`repo[:tag][@digest]` -> (repo, tag or digest); a colon in a registry's host:port is not a tag."""
    if "@" in image:
        repo, digest = image.split("@", 1)
        return repo, digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1:]
    return image, "latest"


def _explain(exc) -> str:
    return str(getattr(exc, "explanation", None) or exc).strip()


class _Progress:
    """One line on stderr, rewritten as layers download (only on a terminal)."""

    def __init__(self, title: str):
        self.title = title
        self.layers: dict[str, tuple[int, int]] = {}
        self.last = 0.0

    def update(self, event: dict) -> None:
        layer, detail = event.get("id"), event.get("progressDetail") or {}
        if layer and detail.get("total"):
            self.layers[layer] = (detail.get("current", 0), detail["total"])
        elif layer and event.get("status") in ("Pull complete", "Already exists", "Download complete"):
            done = self.layers.get(layer, (1, 1))[1]
            self.layers[layer] = (done, done)
        now = time.monotonic()
        if now - self.last < 0.2:
            return
        self.last = now
        current = sum(c for c, _ in self.layers.values()) / 1e6
        total = sum(t for _, t in self.layers.values()) / 1e6
        sys.stderr.write(f"\r{self.title}: {current:.1f}/{total:.1f} MB, {len(self.layers)} layers ")
        sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()
