"""Config sources: endpoint, in-cluster service account, kubeconfig (lazy import), load()."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kdns.k8s.client import ApiClient
from kdns.k8s.config import ApiConfig, TokenFile, from_endpoint, from_kubeconfig, in_cluster, load
from kdns.k8s.errors import ApiError, ConfigError
from kdns.k8s.resources import SERVICES
from tests.fakeapi.app import FakeApi
from tests.fakeapi.tls import TlsBundle, make_tls_bundle


@pytest.mark.parametrize("url", ["", "127.0.0.1:6443", "ftp://x", "http://", "https://h:99999"])
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="URL"):
        ApiConfig(url)


def test_endpoint_config() -> None:
    cfg = from_endpoint("http://127.0.0.1:8080/")
    assert cfg.base_url == "http://127.0.0.1:8080" and cfg.host == "127.0.0.1:8080"
    assert not cfg.is_https and cfg.ssl_context() is None
    with pytest.raises(ConfigError, match="file not found"):
        from_endpoint("http://127.0.0.1:8080", "/nonexistent/token")
    with pytest.raises(ConfigError, match="both"):
        ApiConfig("https://h", client_cert_file="/x")


def test_in_cluster(tmp_path: Path) -> None:
    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("t")
    ca.write_text("x")
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    cfg = in_cluster(environ=env, token_file=str(token), ca_file=str(ca))
    assert cfg.base_url == "https://10.96.0.1:443"
    assert cfg.token_file == str(token) and cfg.ca_file == str(ca)
    env6 = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    assert in_cluster(environ=env6, token_file=str(token),
                      ca_file=str(ca)).base_url == "https://[fd00::1]:443"
    with pytest.raises(ConfigError, match="not running in a cluster"):
        in_cluster(environ={}, token_file=str(token), ca_file=str(ca))
    with pytest.raises(ConfigError, match="file not found"):
        in_cluster(environ=env, token_file=str(tmp_path / "nope"), ca_file=str(ca))


def test_token_file_rereads_on_change_and_survives_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("one\n")
    tf = TokenFile(str(path))
    assert tf.read() == "one"
    (tmp_path / "new").write_text("two")
    (tmp_path / "new").rename(path)
    assert tf.read() == "two"
    path.unlink()  # mid-rotation: keep the last good token
    assert tf.read() == "two"
    path.write_text("")
    assert tf.read() == "two"
    with pytest.raises(ConfigError, match="empty"):
        TokenFile(str(path)).read()
    with pytest.raises(ConfigError, match="cannot read"):
        TokenFile(str(tmp_path / "missing")).read()


def test_kubernetes_asyncio_is_imported_only_for_kubeconfig() -> None:
    code = ("import sys, kdns.k8s.config, kdns.k8s.client, kdns.k8s.reflector, "
            "kdns.k8s.objects, kdns.k8s.resources\n"
            "assert 'kubernetes_asyncio' not in sys.modules, 'imported eagerly'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsBundle:
    return make_tls_bundle(tmp_path_factory.mktemp("kubeconfig-tls"))


def _kubeconfig(path: Path, server: str, tls: TlsBundle, current: str) -> None:
    b64 = lambda p: base64.b64encode(Path(p).read_bytes()).decode()  # noqa: E731
    clusters: list[dict[str, Any]] = [
        {"name": "ca-file", "cluster": {"server": server,
                                        "certificate-authority": str(tls.ca_cert)}},
        {"name": "ca-data", "cluster": {"server": server,
                                        "certificate-authority-data": b64(tls.ca_cert)}},
        {"name": "insecure", "cluster": {"server": server, "insecure-skip-tls-verify": True}},
    ]
    users: list[dict[str, Any]] = [
        {"name": "token", "user": {"token": "tok-static"}},
        {"name": "token-file", "user": {"tokenFile": "sa-token"}},  # relative to the kubeconfig
        {"name": "certs", "user": {"client-certificate-data": b64(tls.client_cert),
                                   "client-key-data": b64(tls.client_key)}},
        {"name": "basic", "user": {"username": "u", "password": "p"}},
    ]
    contexts = [{"name": n, "context": {"cluster": c, "user": u}} for n, c, u in [
        ("static", "ca-file", "token"), ("rotating", "ca-data", "token-file"),
        ("certs", "ca-data", "certs"), ("insecure", "insecure", "token"),
        ("basic", "ca-file", "basic")]]
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "clusters": clusters,
                                    "users": users, "contexts": contexts,
                                    "current-context": current}))


async def test_kubeconfig_contexts_resolve_and_connect(tmp_path: Path, tls: TlsBundle) -> None:
    (tmp_path / "sa-token").write_text("tok-file-1")
    kc = tmp_path / "kubeconfig"
    async with FakeApi(tls=tls, tokens={"tok-static", "tok-file-1"}) as api:
        _kubeconfig(kc, api.url, tls, current="static")
        cfg = await from_kubeconfig(str(kc))  # current-context
        assert cfg.base_url == api.url and cfg.token == "tok-static"
        async with ApiClient(cfg) as client:
            await client.list(SERVICES.path)

        cfg = await from_kubeconfig(str(kc), "rotating")
        assert cfg.token_file == str(tmp_path / "sa-token") and cfg.ca_file
        async with ApiClient(cfg) as client:
            await client.list(SERVICES.path)
            (tmp_path / "sa-token").write_text("tok-file-2-rotated")
            api.tokens = {"tok-file-2-rotated"}
            await client.list(SERVICES.path)

        api.require_client_cert, api.tokens = True, None
        cfg = await load(endpoint="http://ignored:1", kubeconfig=str(kc), context="certs")
        assert cfg.client_cert_file and cfg.client_key_file
        async with ApiClient(cfg) as client:
            await client.list(SERVICES.path)
        assert api.requests[-1].client_cert_cn == "kdns-test"
    assert [r.authorization for r in api.requests][:3] == [
        "Bearer tok-static", "Bearer tok-file-1", "Bearer tok-file-2-rotated"]
    assert api.requests[-1].authorization is None


@pytest.mark.parametrize("context,message", [
    ("insecure", "insecure-skip-tls-verify"), ("basic", "username/password"),
    ("missing-context", "cannot load kubeconfig")])
async def test_kubeconfig_refusals(tmp_path: Path, tls: TlsBundle, context: str,
                                   message: str) -> None:
    kc = tmp_path / "kubeconfig"
    _kubeconfig(kc, "https://127.0.0.1:1", tls, current="static")
    with pytest.raises(ConfigError, match=message):
        await from_kubeconfig(str(kc), context)


async def test_bad_kubeconfig_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        await from_kubeconfig(str(tmp_path / "nope"))
    bad = tmp_path / "bad"
    bad.write_text("{{{ not yaml")
    with pytest.raises(ConfigError, match="cannot load kubeconfig"):
        await from_kubeconfig(str(bad))
    empty = tmp_path / "empty"
    empty.write_text("apiVersion: v1\nkind: Config\n")
    with pytest.raises(ConfigError):
        await from_kubeconfig(str(empty))


async def test_load_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = await load(endpoint="http://127.0.0.1:9")
    assert cfg.base_url == "http://127.0.0.1:9"
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConfigError, match="not running in a cluster"):
        await load()


async def test_exec_plugin_credentials_are_refreshed_after_401(tmp_path: Path,
                                                               tls: TlsBundle) -> None:
    """An exec plugin's token expires; the client re-runs the plugin after a 401."""
    current = tmp_path / "current-token"
    current.write_text("exec-1")
    plugin = tmp_path / "cred.py"
    plugin.write_text(
        "import json, sys\n"
        "token = open(sys.argv[1]).read().strip()\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1',\n"
        "                  'kind': 'ExecCredential', 'status': {'token': token}}))\n")
    kc = tmp_path / "kubeconfig"
    async with FakeApi(tls=tls, tokens={"exec-1"}) as api:
        kc.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "k", "cluster": {"server": api.url,
                                                   "certificate-authority": str(tls.ca_cert)}}],
            "users": [{"name": "u", "user": {"exec": {
                "apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
                "args": [str(plugin), str(current)], "interactiveMode": "Never"}}}],
            "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]}))
        cfg = await from_kubeconfig(str(kc))
        assert cfg.token == "exec-1" and cfg.reload_from == (str(kc), None)
        async with ApiClient(cfg) as client:
            await client.list(SERVICES.path)
            current.write_text("exec-2")  # the old token expires, the plugin now issues a new one
            api.tokens = {"exec-2"}
            await client.list(SERVICES.path)
            api.tokens = {"exec-3"}  # a second 401 within RELOAD_INTERVAL is not retried
            current.write_text("exec-3")
            with pytest.raises(ApiError) as err:
                await client.list(SERVICES.path)
            assert err.value.status == 401
    assert [r.authorization for r in api.requests] == [
        "Bearer exec-1", "Bearer exec-1", "Bearer exec-2", "Bearer exec-2"]
