"""The cluster's certificate authority and the server certificate its listeners present.

`up` makes a CA once per cluster (its key 0600 in LOCALDEV_HOME/tls) and a server certificate signed by it
for every name clients may use (the advertised host, the bind host, localhost, the listener's address).
A client pins the CA (`localdev login` shows its SHA-256 fingerprint) and then verifies every TLS
connection to the agent and the services against it. A certificate and key named in the config replace
the generated server certificate.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

from localdev.state import StateDir, write_private

CA_DAYS = 3650
SERVER_DAYS = 825  # the longest validity clients (browsers, Apple's TLS stack) accept for a server certificate


@dataclass(frozen=True)
class ServerCert:
    cert: Path
    key: Path
    ca: Path | None  # None for a certificate the config names (its CA is the user's)


def fingerprint(pem: bytes | str) -> str:
    """SHA-256 of a certificate's DER bytes, as `AB:CD:...` (what `openssl x509 -fingerprint -sha256` prints)."""
    import ssl

    text = pem.decode() if isinstance(pem, bytes) else pem
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(text)).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def tls_dir(state: StateDir) -> Path:
    return state.home / "tls"


def ensure_server_cert(state: StateDir, names: list[str]) -> ServerCert:
    """The cluster CA (made once) and a server certificate covering `names` (made again when they change)."""
    directory = tls_dir(state)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    with state.lock("tls"):
        ca_cert, ca_key = directory / "ca.pem", directory / "ca.key"
        if not (ca_cert.exists() and ca_key.exists()):
            _make_ca(ca_cert, ca_key)
        cert, key, recorded = directory / "server.pem", directory / "server.key", directory / "server.json"
        wanted = sorted(set(names))
        current = json.loads(recorded.read_text()) if recorded.exists() else None
        if current != {"names": wanted, "ca": fingerprint(ca_cert.read_bytes())} or not cert.exists():
            _make_server(ca_cert, ca_key, cert, key, wanted)
            write_private(recorded, json.dumps({"names": wanted, "ca": fingerprint(ca_cert.read_bytes())}))
        return ServerCert(cert=cert, key=key, ca=ca_cert)


def _make_ca(cert_path: Path, key_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localdev cluster CA"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "localdev")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    write_private(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()).decode())
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _make_server(ca_cert_path: Path, ca_key_path: Path, cert_path: Path, key_path: Path, names: list[str]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "localdev")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_cert.public_key()), critical=False)  # type: ignore[arg-type]  # ours: an EC key
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    write_private(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()).decode())
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
