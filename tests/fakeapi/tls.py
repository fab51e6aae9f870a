"""A throwaway CA, server and client certificates for https tests.

Uses the ``cryptography`` package when it is installed and the ``openssl`` CLI otherwise.
"""

from __future__ import annotations

import ipaddress
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TlsBundle:
    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def server_context(self, require_client_cert: bool = False) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.server_cert, self.server_key)
        ctx.load_verify_locations(self.ca_cert)
        # OPTIONAL: the server records the client CN; the fake's own check rejects if required.
        ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx


def make_tls_bundle(directory: str | Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
                    ca_name: str = "fakeapi-ca", backend: str | None = None) -> TlsBundle:
    """Write ca.crt/ca.key, server.crt/key (SANs = ``hosts``), client.crt/key (CN=kdns-test)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    b = TlsBundle(d, d / "ca.crt", d / "ca.key", d / "server.crt", d / "server.key",
                  d / "client.crt", d / "client.key")
    if backend is None:
        try:
            import cryptography  # noqa: F401
            backend = "cryptography"
        except ImportError:
            backend = "openssl"
    if backend == "cryptography":
        _with_cryptography(b, hosts, ca_name)
    else:
        _with_openssl(b, hosts, ca_name)
    return b


def _with_cryptography(b: TlsBundle, hosts: tuple[str, ...], ca_name: str) -> None:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name(ca_name)).issuer_name(name(ca_name))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    b.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    write_key(ca_key, b.ca_key)

    def leaf(cn: str, sans: list[x509.GeneralName], usage: x509.ObjectIdentifier,
             cert_path: Path, key_path: Path) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       ca_key.public_key()), critical=False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_key(key, key_path)

    sans: list[x509.GeneralName] = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    leaf("fakeapi", sans, ExtendedKeyUsageOID.SERVER_AUTH, b.server_cert, b.server_key)
    leaf("kdns-test", [], ExtendedKeyUsageOID.CLIENT_AUTH, b.client_cert, b.client_key)


def _with_openssl(b: TlsBundle, hosts: tuple[str, ...], ca_name: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("neither the cryptography package nor the openssl CLI is available")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run("req", "-x509", *ec, "-keyout", str(b.ca_key), "-out", str(b.ca_cert), "-days", "2",
        "-subj", f"/CN={ca_name}", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    san = ",".join(("IP:" if _is_ip(h) else "DNS:") + h for h in hosts)
    for cn, cert, key, ext in (
        ("fakeapi", b.server_cert, b.server_key,
         f"subjectAltName={san}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"),
        ("kdns-test", b.client_cert, b.client_key,
         "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n"),
    ):
        csr = b.directory / f"{cn}.csr"
        extfile = b.directory / f"{cn}.ext"
        extfile.write_text(ext)
        run("req", "-new", *ec, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={cn}")
        run("x509", "-req", "-in", str(csr), "-CA", str(b.ca_cert), "-CAkey", str(b.ca_key),
            "-CAcreateserial", "-out", str(cert), "-days", "1", "-extfile", str(extfile))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False
