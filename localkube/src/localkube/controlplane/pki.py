"""Per-run certificates under the work folder: one CA, the apiserver's and our kubelet's serving certificates,
client certificates for each component and the admin, and the service-account signing key. Keys are written
0600 and never logged."""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: identities (file stem, common name, organisations) that get a client certificate
CLIENTS = (
    ("admin", "kubernetes-admin", ("system:masters",)),
    ("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",)),
    ("controller-manager", "system:kube-controller-manager", ()),
    ("scheduler", "system:kube-scheduler", ()),
)
SERVICE_IP = "10.0.0.1"  # first address of --service-cluster-ip-range


@dataclass(frozen=True)
class Pki:
    folder: str

    def path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    @property
    def ca(self) -> str:
        return self.path("ca.crt")

    def cert(self, stem: str) -> str:
        return self.path(f"{stem}.crt")

    def key(self, stem: str) -> str:
        return self.path(f"{stem}.key")


def _write(path: str, data: bytes, private: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_bytes(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    pkcs8 = serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption())


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    *,
    server: bool,
    hosts: tuple[str, ...] = (),
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
    )
    if hosts:
        sans: list[x509.GeneralName] = []
        for h in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                sans.append(x509.DNSName(h))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def issue_client(pki: Pki, stem: str, cn: str, orgs: tuple[str, ...]) -> None:
    ca_cert = x509.load_pem_x509_certificate(Path(pki.ca).read_bytes())
    ca_key = serialization.load_pem_private_key(Path(pki.key("ca")).read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    cert, key = _issue(ca_cert, ca_key, _name(cn, orgs), server=False)
    _write(pki.cert(stem), cert.public_bytes(serialization.Encoding.PEM), False)
    _write(pki.key(stem), _key_bytes(key), True)


def generate(folder: str, node_name: str) -> Pki:
    """Everything the control plane and our node need, freshly made for this run."""
    os.makedirs(folder, mode=0o700, exist_ok=True)
    pki = Pki(folder)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    ca_name = _name("localkube-ca")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(pki.ca, ca_cert.public_bytes(serialization.Encoding.PEM), False)
    _write(pki.key("ca"), _key_bytes(ca_key), True)
    servers = {
        "apiserver": (
            "kube-apiserver",
            ("127.0.0.1", "localhost", SERVICE_IP, "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
        ),
        "kubelet": (node_name, ("127.0.0.1", "localhost", node_name)),
    }
    for stem, (cn, hosts) in servers.items():
        cert, key = _issue(ca_cert, ca_key, _name(cn), server=True, hosts=hosts)
        _write(pki.cert(stem), cert.public_bytes(serialization.Encoding.PEM), False)
        _write(pki.key(stem), _key_bytes(key), True)
    for stem, cn, orgs in (*CLIENTS, ("node", f"system:node:{node_name}", ("system:nodes",))):
        cert, key = _issue(ca_cert, ca_key, _name(cn, orgs), server=False)
        _write(pki.cert(stem), cert.public_bytes(serialization.Encoding.PEM), False)
        _write(pki.key(stem), _key_bytes(key), True)
    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write(pki.key("sa"), _key_bytes(sa), True)
    pub = sa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    _write(pki.path("sa.pub"), pub, False)
    return pki
