"""TLS material for a federation: a private CA and a SuperLink server certificate.

Generated with ``cryptography`` into ``<project home>/federated/tls/``: ``ca.pem`` (what every SuperNode and
the run submitter trust), ``server.pem`` + ``server.key`` (the SuperLink's identity, EC P-256, SANs for the
given host names/addresses). The CA key is kept beside them (mode 0600) so new server certificates can be
issued for other hosts; the federation never sends it anywhere.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from bastion.errors import CryptoError

CA_VALIDITY_DAYS = 365
SERVER_VALIDITY_DAYS = 30


@dataclass(frozen=True)
class TlsMaterial:
    """Paths of the PEM files a federation uses."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    hosts: tuple[str, ...]


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _san(hosts: tuple[str, ...]) -> list[object]:
    from cryptography import x509

    names: list[object] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def ensure_tls(directory: Path, *, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> TlsMaterial:
    """Create (or reuse) the CA and a server certificate valid for ``hosts`` under ``directory``.

    A server certificate that is missing, expires within a day or does not name every host is reissued;
    the CA is created once. Raises CryptoError when existing files cannot be parsed.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    ca_cert_path, ca_key_path = directory / "ca.pem", directory / "ca.key"
    srv_cert_path, srv_key_path = directory / "server.pem", directory / "server.key"
    now = _dt.datetime.now(_dt.UTC)

    try:
        if ca_cert_path.is_file() and ca_key_path.is_file():
            ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
            ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        else:
            ca_key = ec.generate_private_key(ec.SECP256R1())
            ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bastion federation CA")])
            ca_cert = (
                x509.CertificateBuilder()
                .subject_name(ca_name)
                .issuer_name(ca_name)
                .public_key(ca_key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - _dt.timedelta(minutes=5))
                .not_valid_after(now + _dt.timedelta(days=CA_VALIDITY_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=True,
                        crl_sign=True,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .sign(ca_key, hashes.SHA256())
            )
            _write_private(
                ca_key_path,
                ca_key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
            ca_cert_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

        if srv_cert_path.is_file() and srv_key_path.is_file():
            current = x509.load_pem_x509_certificate(srv_cert_path.read_bytes())
            san = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            have = {str(v) for v in san.get_values_for_type(x509.IPAddress)} | set(
                san.get_values_for_type(x509.DNSName)
            )
            fresh = current.not_valid_after_utc > now + _dt.timedelta(days=1)
            if fresh and set(hosts) <= have and current.issuer == ca_cert.subject:
                return TlsMaterial(ca_cert_path, srv_cert_path, srv_key_path, hosts)

        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise CryptoError("federation CA key has an unexpected type")
        srv_key = ec.generate_private_key(ec.SECP256R1())
        srv_cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca_cert.subject)
            .public_key(srv_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5))
            .not_valid_after(now + _dt.timedelta(days=SERVER_VALIDITY_DAYS))
            .add_extension(x509.SubjectAlternativeName(_san(hosts)), critical=False)  # type: ignore[arg-type]
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        _write_private(
            srv_key_path,
            srv_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        srv_cert_path.write_bytes(srv_cert.public_bytes(serialization.Encoding.PEM))
    except (ValueError, TypeError, x509.ExtensionNotFound) as exc:
        raise CryptoError("federation TLS material could not be read or created") from exc
    return TlsMaterial(ca_cert_path, srv_cert_path, srv_key_path, hosts)
