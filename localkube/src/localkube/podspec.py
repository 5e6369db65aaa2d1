"""The kubelet's translation of a pod spec into what a runtime starts: volumes materialised on the host
(emptyDir per pod uid, secret/configMap files, PVC folders, hostPath, downwardAPI: downward.py), env from
values, secretKeyRef, configMapKeyRef, fieldRef and envFrom with $(VAR) expansion, argv from command + args
(there are no image entrypoints: the host stands in for every image), workingDir or the image's WORKDIR."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from localkube import downward, projected
from localkube.resources import Obj
from localkube.runtime import ContainerSpec, Mount
from localkube.store import Store

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MARKER_ENV = "LOCALKUBE_CLUSTER_ID"


class ContainerConfigError(Exception):
    """CreateContainerConfigError: a referenced Secret/ConfigMap or key is missing."""


class MountError(Exception):
    """A volume cannot be set up (FailedMount); the pod stays in ContainerCreating."""


class CreateError(Exception):
    """CreateContainerError: the container cannot be created as specified."""


@dataclass(frozen=True)
class PodContext:
    pod: Obj
    pod_dir: str
    pvc_root: str
    image_workdir: str
    hidden_paths: tuple[str, ...]
    cluster_id: str
    image_paths: tuple[str, ...] = ()


def _lookup(store: Store, kind: str, ns: str, name: str, key: str | None, optional: bool) -> str | None:
    resource = "secrets" if kind == "Secret" else "configmaps"
    obj = store.find(resource, ns, name)
    if obj is None:
        if optional:
            return None
        raise ContainerConfigError(f'{kind.lower()} "{name}" not found')
    if key is None:
        return ""
    if kind == "Secret":
        data = obj.get("data") or {}
        if key in data:
            return base64.b64decode(data[key]).decode(errors="replace")
    else:
        if key in (obj.get("data") or {}):
            return str(obj["data"][key])
    if optional:
        return None
    raise ContainerConfigError(f"couldn't find key {key} in {kind} {ns}/{name}")


def _expand(text: str, env: Mapping[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", sub, text)


def build_env(store: Store, ctx: PodContext, container: Obj) -> dict[str, str]:
    pod = ctx.pod
    ns = pod["metadata"]["namespace"]
    env: dict[str, str] = {"PATH": DEFAULT_PATH, "HOME": "/root", "HOSTNAME": pod["metadata"]["name"]}
    for src in container.get("envFrom") or []:
        prefix = src.get("prefix", "")
        for kind, field in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
            ref = src.get(field)
            if not ref:
                continue
            resource = "secrets" if kind == "Secret" else "configmaps"
            obj = store.find(resource, ns, ref["name"])
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(f'{kind.lower()} "{ref["name"]}" not found')
            for key, raw in (obj.get("data") or {}).items():
                env[prefix + key] = base64.b64decode(raw).decode(errors="replace") if kind == "Secret" else str(raw)
    fields = {
        "metadata.name": pod["metadata"]["name"],
        "metadata.namespace": ns,
        "metadata.uid": pod["metadata"]["uid"],
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = _expand(str(var.get("value", "")), env)
            continue
        vf = var["valueFrom"]
        value: str | None = None
        if "secretKeyRef" in vf:
            ref = vf["secretKeyRef"]
            value = _lookup(store, "Secret", ns, ref["name"], ref["key"], bool(ref.get("optional")))
        elif "configMapKeyRef" in vf:
            ref = vf["configMapKeyRef"]
            value = _lookup(store, "ConfigMap", ns, ref["name"], ref["key"], bool(ref.get("optional")))
        elif "fieldRef" in vf:
            path = vf["fieldRef"]["fieldPath"]
            m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
            value = str((pod["metadata"].get(m.group(1)) or {}).get(m.group(2), "")) if m else fields.get(path, "")
        elif "resourceFieldRef" in vf:
            value = "0"
        if value is not None:
            env[name] = value
    env[MARKER_ENV] = ctx.cluster_id
    return env


def _write_files(target: str, data: Mapping[str, bytes], items: list[Obj] | None, default_mode: int) -> None:
    os.makedirs(target, exist_ok=True)
    chosen: list[tuple[str, bytes, int]] = []
    if items:
        for item in items:
            if item["key"] not in data:
                raise MountError(f"configmap references non-existent config key: {item['key']}")
            chosen.append((item["path"], data[item["key"]], int(item.get("mode", default_mode))))
    else:
        chosen = [(k, v, default_mode) for k, v in data.items()]
    for rel, content, mode in chosen:
        path = os.path.join(target, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.chmod(path, mode)


def missing_claims(store: Store, pod: Obj, pvc_root: str) -> list[str]:
    ns = pod["metadata"]["namespace"]
    missing = []
    for vol in pod["spec"].get("volumes") or []:
        claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
        if (
            claim
            and store.find("persistentvolumeclaims", ns, claim) is None
            and not os.path.isdir(os.path.join(pvc_root, claim))
        ):
            missing.append(claim)
    return missing


def prepare_volumes(store: Store, ctx: PodContext) -> dict[str, tuple[str, bool]]:
    """Volume name -> (host path, read-only). Raises MountError as the kubelet reports FailedMount."""
    pod = ctx.pod
    ns = pod["metadata"]["namespace"]
    out: dict[str, tuple[str, bool]] = {}
    for vol in pod["spec"].get("volumes") or []:
        name = vol["name"]
        here = os.path.join(ctx.pod_dir, "volumes", name)
        prefix = f'MountVolume.SetUp failed for volume "{name}" : '
        if "emptyDir" in vol:
            os.makedirs(here, exist_ok=True)
            out[name] = (here, False)
        elif "secret" in vol or "configMap" in vol:
            kind, field = ("Secret", "secret") if "secret" in vol else ("ConfigMap", "configMap")
            src = vol[field]
            obj_name = src.get("secretName") if kind == "Secret" else src.get("name")
            obj = store.find("secrets" if kind == "Secret" else "configmaps", ns, str(obj_name))
            data: dict[str, bytes] = {}
            if obj is None and not src.get("optional"):
                raise MountError(prefix + f'{kind.lower()} "{obj_name}" not found')
            if obj is not None and kind == "Secret":
                data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
            elif obj is not None:
                data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
                data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
            try:
                _write_files(here, data, src.get("items"), int(src.get("defaultMode", 0o644)))
            except MountError as e:
                raise MountError(prefix + str(e)) from e
            out[name] = (here, True)
        elif "persistentVolumeClaim" in vol:
            claim = vol["persistentVolumeClaim"]["claimName"]
            path = os.path.join(ctx.pvc_root, claim)
            os.makedirs(path, exist_ok=True)
            out[name] = (path, bool(vol["persistentVolumeClaim"].get("readOnly")))
        elif "hostPath" in vol:
            path = vol["hostPath"]["path"]
            kind = vol["hostPath"].get("type", "")
            if kind in ("", "DirectoryOrCreate"):
                os.makedirs(path, exist_ok=True)
            elif kind == "Directory" and not os.path.isdir(path):
                raise MountError(prefix + f"hostPath type check failed: {path} is not a directory")
            elif kind == "File" and not os.path.isfile(path):
                raise MountError(prefix + f"hostPath type check failed: {path} is not a file")
            out[name] = (path, False)
        elif "downwardAPI" in vol:
            source = vol["downwardAPI"]
            downward.write(here, downward.render(pod, source), int(source.get("defaultMode", 0o644)))
            out[name] = (here, True)
        elif "projected" in vol:
            try:
                files = projected.project(store, pod, vol["projected"])
                _write_files(here, files, None, int(vol["projected"].get("defaultMode", 0o644)))
            except (projected.ProjectionError, MountError) as e:
                raise MountError(prefix + str(e)) from e
            out[name] = (here, True)
        else:
            raise MountError(prefix + "volume type not supported by the local cluster")
    return out


def container_spec(
    store: Store, ctx: PodContext, container: Obj, volumes: Mapping[str, tuple[str, bool]]
) -> ContainerSpec:
    env = build_env(store, ctx, container)
    command = [_expand(str(x), env) for x in container.get("command") or []]
    args = [_expand(str(x), env) for x in container.get("args") or []]
    argv = tuple(command + args)
    if not argv:
        raise CreateError("the local cluster has no image entrypoints: the container needs a command (or args) to run")
    mounts = []
    for m in container.get("volumeMounts") or []:
        host, ro = volumes[m["name"]]
        if m.get("subPath"):
            host = os.path.join(host, m["subPath"])
            os.makedirs(host, exist_ok=True)
        mounts.append(Mount(host, m["mountPath"], bool(m.get("readOnly")) or ro))
    tmp = os.path.join(ctx.pod_dir, "containers", container["name"], "tmp")
    os.makedirs(tmp, exist_ok=True)
    os.chmod(tmp, 0o1777)
    return ContainerSpec(
        argv=argv,
        env=env,
        working_dir=container.get("workingDir") or ctx.image_workdir,
        mounts=tuple(mounts),
        hidden_paths=ctx.hidden_paths,
        tmp_dir=tmp,
        image_paths=ctx.image_paths,
    )
