"""Move images and their referrers between the store and an OCI registry.

The client speaks the OCI distribution spec over HTTP(S) with the standard
library only: ``HEAD`` to skip blobs the registry has, monolithic uploads
(``POST`` then ``PUT ?digest=``), and manifests ``PUT`` with their exact
bytes so that every digest stays the same. Referrers (signatures, golden
manifests) travel too: through the referrers API where the registry has one,
otherwise through the OCI 1.1 tag schema, an index tagged ``sha256-<hex>``
that lists the referrers of the manifest ``sha256:<hex>`` (what distribution
2.8 needs).

Authentication is HTTP basic (username and password), or a bearer token
fetched from the realm a registry's ``401`` challenge names (the Docker
token protocol of Docker Hub, GHCR, Harbor and distribution), with the same
username and password. TLS uses the system trust store or a given CA file;
loopback registries are spoken to over plain HTTP, as Docker and ORAS do, and
``plain_http`` forces it elsewhere.

Every byte received is checked: manifests and blobs must hash to the digest
asked for, or nothing is stored.

Example:
    >>> target = parse_registry_url("registry://127.0.0.1:5000/shop/web")
    >>> client = RegistryClient(target)                      # doctest: +SKIP
    >>> push_image(layout, "web", client, tag="web")          # doctest: +SKIP
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zerodrift.errors import ConfigError, IntegrityError, OperationalError
from zerodrift.oci.descriptor import (
    MEDIA_TYPE_INDEX,
    MEDIA_TYPE_MANIFEST,
    Descriptor,
    digest_bytes,
    encode,
    image_index,
    parse_digest,
)
from zerodrift.oci.layout import MAX_DOCUMENT_SIZE, Layout

__all__ = [
    "RegistryClient",
    "RegistryRef",
    "TransferReport",
    "parse_registry_url",
    "pull_image",
    "push_image",
]

_logger = logging.getLogger(__name__)

_URL_RE = re.compile(
    r"^registry://(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(:(?P<port>\d{1,5}))?"
    r"/(?P<repo>[a-z0-9]+(?:[._/-][a-z0-9]+)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
_LOOPBACK = {"127.0.0.1", "localhost", "[::1]"}
_ACCEPT = ", ".join((MEDIA_TYPE_MANIFEST, MEDIA_TYPE_INDEX))
_CHUNK = 1 << 20
_CHALLENGE_RE = re.compile(r'(\w+)="([^"]*)"')

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RegistryRef:
    """A parsed ``registry://host[:port]/repo[:tag][@digest]`` URL."""

    host: str
    port: int | None
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def address(self) -> str:
        """``host[:port]``."""
        return f"{self.host}:{self.port}" if self.port else self.host

    def __str__(self) -> str:
        text = f"registry://{self.address}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_registry_url(text: str) -> RegistryRef:
    """Parse ``registry://host[:port]/repo[:tag][@sha256:...]``.

    Raises:
        ConfigError: The URL is not of that form.
    """
    match = _URL_RE.match(text)
    if match is None:
        raise ConfigError(
            f"not a registry URL: {text!r}",
            hint="use registry://host[:port]/repository[:tag][@sha256:<digest>], "
            "e.g. registry://127.0.0.1:5000/shop/web",
            reference="registry-url-invalid",
        )
    port = match.group("port")
    return RegistryRef(
        match.group("host"),
        int(port) if port else None,
        match.group("repo"),
        match.group("tag"),
        match.group("digest"),
    )


@dataclass
class TransferReport:
    """What a push or pull moved.

    Attributes:
        digest: The image manifest's digest.
        referrers: Digests of the referrer manifests moved with it.
        blobs_sent: Blobs transferred.
        blobs_skipped: Blobs the other side already had.
        bytes_sent: Bytes of blobs transferred.
    """

    digest: str
    referrers: list[str] = field(default_factory=list)
    blobs_sent: int = 0
    blobs_skipped: int = 0
    bytes_sent: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Render for ``--format json``."""
        return {
            "digest": self.digest,
            "referrers": self.referrers,
            "blobs_sent": self.blobs_sent,
            "blobs_skipped": self.blobs_skipped,
            "bytes_sent": self.bytes_sent,
        }


class RegistryClient:
    """A minimal OCI distribution client for one repository.

    Args:
        ref: The registry and repository.
        username: For HTTP basic authentication.
        password: For HTTP basic authentication.
        ca_file: A PEM bundle to trust instead of the system store.
        plain_http: ``True`` for HTTP, ``False`` for HTTPS; by default HTTPS,
            except plain HTTP for a loopback host without ``ca_file``.
        timeout: Seconds to wait for each response.
    """

    def __init__(
        self,
        ref: RegistryRef,
        *,
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
        plain_http: bool | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.ref = ref
        if plain_http is None:
            secure = ca_file is not None or ref.host not in _LOOPBACK
        else:
            secure = not plain_http
        self._base = f"{'https' if secure else 'http'}://{ref.address}"
        self._context = (
            ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
        )
        self._auth: str | None = None
        self._token: str | None = None
        if username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self._auth = f"Basic {token}"
        self._timeout = timeout
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=self._context)
        )

    # --- HTTP ----------------------------------------------------------------

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self._base + path

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | Iterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
        missing_ok: bool = False,
    ) -> Any:
        try:
            response = self._send(method, path, body, headers)
        except urllib.error.HTTPError as exc:
            # A token registry answers 401 with a Bearer challenge: get a
            # token for the scope it names, then retry once (bodies that are
            # streams cannot be replayed; an earlier request got the token).
            challenge = exc.headers.get("WWW-Authenticate", "")
            replayable = body is None or isinstance(body, bytes)
            if exc.code == 401 and challenge.startswith("Bearer ") and replayable:
                exc.close()
                self._fetch_token(challenge)
                try:
                    response = self._send(method, path, body, headers)
                except urllib.error.HTTPError as again:
                    return self._failed(method, path, again, missing_ok)
            else:
                return self._failed(method, path, exc, missing_ok)
        if response.status not in ok:
            response.close()
            raise OperationalError(
                f"{method} {path} answered {response.status}, expected {ok}",
                reference="registry-protocol",
            )
        return response

    def _send(
        self,
        method: str,
        path: str,
        body: bytes | Iterable[bytes] | None,
        headers: Mapping[str, str] | None,
    ) -> Any:
        request = urllib.request.Request(  # noqa: S310 - the scheme is fixed above
            self._url(path), data=body, method=method, headers=dict(headers or {})
        )
        auth = f"Bearer {self._token}" if self._token else self._auth
        if auth:
            # Not forwarded on redirects: blob downloads may be redirected to
            # object storage, which must not see (and rejects) our credentials.
            request.add_unredirected_header("Authorization", auth)
        try:
            return self._opener.open(request, timeout=self._timeout)
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise OperationalError(
                f"cannot reach the registry {self.ref.address}: {reason}",
                hint="check that the registry runs and the address is right; "
                "for a self-signed certificate pass --ca-file",
                reference="registry-unreachable",
            ) from exc

    def _failed(
        self, method: str, path: str, exc: urllib.error.HTTPError, missing_ok: bool
    ) -> None:
        if not (missing_ok and exc.code == 404):
            raise self._http_error(method, path, exc) from exc
        exc.close()

    def _fetch_token(self, challenge: str) -> None:
        """Get a bearer token from the realm a ``WWW-Authenticate`` names.

        The scope always covers pull and push on this repository, so one token
        serves a whole transfer.
        """
        params = dict(_CHALLENGE_RE.findall(challenge))
        realm = params.get("realm")
        if not realm or not realm.startswith(("https://", "http://")):
            raise OperationalError(
                f"the registry {self.ref.address} sent an unusable auth challenge",
                reference="registry-protocol",
            )
        query = {"scope": f"repository:{self.ref.repository}:pull,push"}
        if "service" in params:
            query["service"] = params["service"]
        request = urllib.request.Request(  # noqa: S310 - checked just above
            f"{realm}?{urllib.parse.urlencode(query)}"
        )
        if self._auth:
            request.add_unredirected_header("Authorization", self._auth)
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                answer = json.loads(response.read(MAX_DOCUMENT_SIZE))
        except urllib.error.HTTPError as exc:
            raise self._http_error("GET", realm, exc) from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise OperationalError(
                f"cannot get a token from {realm}: {exc}",
                reference="registry-token-failed",
            ) from exc
        token = answer.get("token") or answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise OperationalError(
                f"the token service {realm} returned no token",
                reference="registry-token-failed",
            )
        self._token = token

    def _http_error(
        self, method: str, path: str, exc: urllib.error.HTTPError
    ) -> OperationalError | ConfigError:
        detail = ""
        with contextlib.suppress(OSError):
            detail = exc.read(2000).decode("utf-8", errors="replace").strip()
        if exc.code == 400 and "HTTPS" in detail:
            return ConfigError(
                f"the registry {self.ref.address} speaks HTTPS",
                hint="pass --ca-file with the registry's CA certificate",
                reference="registry-needs-tls",
            )
        if exc.code in (401, 403):
            return ConfigError(
                f"the registry {self.ref.address} refused access ({exc.code}) to "
                f"{self.ref.repository}",
                hint="pass --username and set ZERODRIFT_REGISTRY_PASSWORD",
                reference="registry-auth-failed",
            )
        return OperationalError(
            f"registry {self.ref.address}: {method} {path} failed with "
            f"{exc.code}: {detail[:300]}",
            hint="the registry rejected the request; see its message above",
            reference="registry-request-failed",
        )

    def ping(self) -> None:
        """Check that the registry speaks the distribution API and lets us in.

        Raises:
            OperationalError: Unreachable, or not an OCI registry.
            ConfigError: Credentials are missing or wrong.
        """
        self._request("GET", "/v2/").close()

    # --- Blobs ---------------------------------------------------------------

    def _repo(self, kind: str, reference: str) -> str:
        return f"/v2/{self.ref.repository}/{kind}/{reference}"

    def has_blob(self, digest: str) -> bool:
        """Whether the repository has the blob ``digest``."""
        response = self._request("HEAD", self._repo("blobs", digest), missing_ok=True)
        if response is None:
            return False
        response.close()
        return True

    def push_blob(self, layout: Layout, blob: Descriptor) -> bool:
        """Upload a blob from ``layout`` unless the registry has it.

        Returns:
            Whether bytes were sent.

        Raises:
            OperationalError: The upload failed.
            IntegrityError: The blob in the store is corrupt (checked as read).
        """
        if self.has_blob(blob.digest):
            return False
        start = self._request(
            "POST", f"/v2/{self.ref.repository}/blobs/uploads/", ok=(202,)
        )
        location = start.headers.get("Location")
        start.close()
        if not location:
            raise OperationalError(
                "the registry gave no upload location", reference="registry-protocol"
            )
        location = urllib.parse.urljoin(self._base + "/", location)
        separator = "&" if "?" in location else "?"
        with layout.open_blob(blob.digest, size=blob.size) as reader:
            # An iterable body with a Content-Length is sent as is, in large
            # chunks; the reader checks the digest as the last chunk passes.
            chunks = iter(lambda: reader.read(_CHUNK), b"")
            response = self._request(
                "PUT",
                f"{location}{separator}digest={blob.digest}",
                body=chunks,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(blob.size),
                },
                ok=(201,),
            )
            reader.verify_rest()
        response.close()
        return True

    def pull_blob(self, layout: Layout, blob: Descriptor) -> bool:
        """Download a blob into ``layout`` unless it is there already.

        Returns:
            Whether bytes were received.

        Raises:
            IntegrityError: The bytes do not hash to the blob's digest.
            OperationalError: The download failed.
        """
        if layout.has_blob(blob.digest):
            return False
        response = self._request("GET", self._repo("blobs", blob.digest))
        with (
            response,
            layout.blob_writer(blob.media_type, expected_digest=blob.digest) as writer,
        ):
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                writer.write(chunk)
                if writer.size > blob.size:
                    raise IntegrityError(
                        f"blob {blob.digest} from the registry is longer than "
                        f"{blob.size} bytes",
                        reference="blob-digest-mismatch",
                    )
        return True

    # --- Manifests -------------------------------------------------------------

    def get_manifest(self, reference: str) -> tuple[bytes, str] | None:
        """Fetch a manifest by tag or digest: ``(exact bytes, media type)``.

        Returns:
            ``None`` when the registry has no such manifest.

        Raises:
            IntegrityError: A manifest fetched by digest does not match it.
        """
        response = self._request(
            "GET",
            self._repo("manifests", reference),
            headers={"Accept": _ACCEPT},
            missing_ok=True,
        )
        if response is None:
            return None
        with response:
            data = response.read(MAX_DOCUMENT_SIZE + 1)
            media_type = response.headers.get_content_type()
        if len(data) > MAX_DOCUMENT_SIZE:
            raise IntegrityError(
                f"manifest {reference} is larger than {MAX_DOCUMENT_SIZE} bytes",
                reference="manifest-too-large",
            )
        if reference.startswith("sha256:") and digest_bytes(data) != reference:
            raise IntegrityError(
                f"the registry sent a manifest that does not hash to {reference}",
                hint="the registry or a proxy altered it; do not use this image",
                reference="manifest-digest-mismatch",
            )
        return data, _media_type(data, media_type)

    def put_manifest(self, reference: str, data: bytes, media_type: str) -> bool:
        """Upload a manifest's exact bytes under a tag or its digest.

        Returns:
            Whether the registry says it indexed the manifest's ``subject``
            (the ``OCI-Subject`` header of OCI 1.1 registries).

        Raises:
            OperationalError: The registry refused it, or changed its digest.
        """
        response = self._request(
            "PUT",
            self._repo("manifests", reference),
            body=data,
            headers={"Content-Type": media_type},
            ok=(201,),
        )
        with response:
            stored = response.headers.get("Docker-Content-Digest")
            subject = response.headers.get("OCI-Subject")
        if stored and stored != digest_bytes(data):
            raise OperationalError(
                f"the registry stored the manifest as {stored}, not "
                f"{digest_bytes(data)}",
                reference="registry-changed-digest",
            )
        return subject is not None

    def referrers(self, digest: str) -> list[Descriptor]:
        """Manifests that name ``digest`` as their subject.

        Uses the referrers API, falling back to the ``sha256-<hex>`` tag.
        """
        response = self._request(
            "GET",
            self._repo("referrers", digest),
            headers={"Accept": MEDIA_TYPE_INDEX},
            missing_ok=True,
        )
        if response is not None:
            with response:
                if response.headers.get_content_type() == MEDIA_TYPE_INDEX:
                    return _index_entries(response.read(MAX_DOCUMENT_SIZE))
        fallback = self.get_manifest(_fallback_tag(digest))
        return _index_entries(fallback[0]) if fallback else []

    def add_fallback_referrers(self, digest: str, referrers: list[Descriptor]) -> None:
        """Merge ``referrers`` into the ``sha256-<hex>`` index of ``digest``."""
        tag = _fallback_tag(digest)
        existing = self.get_manifest(tag)
        entries = _index_entries(existing[0]) if existing else []
        known = {e.digest for e in entries}
        entries += [r for r in referrers if r.digest not in known]
        self.put_manifest(tag, encode(image_index(entries)), MEDIA_TYPE_INDEX)


def _fallback_tag(digest: str) -> str:
    return "sha256-" + parse_digest(digest)


def _media_type(data: bytes, header: str) -> str:
    if header in (MEDIA_TYPE_MANIFEST, MEDIA_TYPE_INDEX):
        return header
    try:
        declared = json.loads(data).get("mediaType")
    except (ValueError, AttributeError):
        declared = None
    return declared if isinstance(declared, str) else header


def _index_entries(data: bytes) -> list[Descriptor]:
    try:
        document = json.loads(data)
        items = document.get("manifests") or []
    except (ValueError, AttributeError) as exc:
        raise IntegrityError(
            "the registry's referrers list is not an OCI index",
            reference="oci-document-malformed",
        ) from exc
    return [Descriptor.from_dict(item) for item in items]


# --- Whole images with their referrers ---------------------------------------------


def _graph(layout: Layout, root: Descriptor) -> Iterator[Descriptor]:
    """The referrers of ``root``, then theirs, breadth first."""
    queue = [root]
    seen = {root.digest}
    while queue:
        current = queue.pop(0)
        for referrer in layout.referrers(current.digest):
            if referrer.digest not in seen:
                seen.add(referrer.digest)
                queue.append(referrer)
                yield referrer


def _push_manifest(
    layout: Layout,
    client: RegistryClient,
    desc: Descriptor,
    reference: str,
    report: TransferReport,
    *,
    progress: Progress | None,
) -> bool:
    raw = layout.read_blob(desc, max_size=MAX_DOCUMENT_SIZE)
    document = json.loads(raw)
    children = []
    if isinstance(document.get("config"), dict):
        children.append(Descriptor.from_dict(document["config"]))
    children += [Descriptor.from_dict(d) for d in document.get("layers") or []]
    for child in children:
        if client.push_blob(layout, child):
            report.blobs_sent += 1
            report.bytes_sent += child.size
            _say(progress, "sent", child)
        else:
            report.blobs_skipped += 1
    _say(progress, "sent manifest", desc)
    return client.put_manifest(reference, raw, str(document["mediaType"]))


def _say(progress: Progress | None, verb: str, desc: Descriptor) -> None:
    if progress is not None:
        kind = desc.artifact_type or desc.media_type
        size = f"{desc.size / 1e6:.1f} MB" if desc.size >= 100_000 else f"{desc.size} B"
        progress(f"{verb} {desc.digest[:19]}… {size} ({kind})")


def push_image(
    layout: Layout,
    ref: str,
    client: RegistryClient,
    *,
    tag: str | None,
    progress: Progress | None = None,
) -> TransferReport:
    """Push the image ``ref`` and all its referrers to ``client``'s repository.

    Args:
        layout: The store.
        ref: Tag or digest of the image in the store.
        client: The target repository.
        tag: Tag to give the image in the registry (``None``: by digest only).
        progress: Called with a line for each blob and manifest sent.

    Raises:
        ConfigError: ``ref`` is not in the store.
        IntegrityError: A blob in the store is corrupt.
        OperationalError: The registry failed or refused.
    """
    client.ping()
    image = layout.resolve(ref)
    if image.media_type != MEDIA_TYPE_MANIFEST:
        raise ConfigError(
            f"{ref} is not an image manifest", reference="image-not-manifest"
        )
    report = TransferReport(image.digest)
    # By digest first, by tag last: nobody finds the image by its tag before
    # its attestations are there.
    _push_manifest(layout, client, image, image.digest, report, progress=progress)
    fallback: dict[str, list[Descriptor]] = {}
    for referrer in _graph(layout, image):
        indexed = _push_manifest(
            layout, client, referrer, referrer.digest, report, progress=progress
        )
        report.referrers.append(referrer.digest)
        if not indexed:
            subject = layout.read_json(referrer)["subject"]["digest"]
            fallback.setdefault(subject, []).append(referrer)
    for subject, referrers in fallback.items():
        client.add_fallback_referrers(subject, referrers)
    if tag is not None:
        raw = layout.read_blob(image, max_size=MAX_DOCUMENT_SIZE)
        client.put_manifest(tag, raw, image.media_type)
    _logger.info("pushed %s with %d referrers", image.digest, len(report.referrers))
    return report


def pull_image(
    client: RegistryClient,
    reference: str,
    layout: Layout,
    *,
    tag: str | None,
    progress: Progress | None = None,
) -> TransferReport:
    """Pull an image and all its referrers from ``client``'s repository.

    Args:
        client: The source repository.
        reference: A tag or ``sha256:`` digest in that repository.
        layout: The store to pull into.
        tag: The tag the image gets in the store.
        progress: Called with a line for each blob received.

    Raises:
        ConfigError: The registry has no such image.
        IntegrityError: Something received does not match its digest.
        OperationalError: The registry failed or refused.
    """
    client.ping()
    fetched = client.get_manifest(reference)
    if fetched is None:
        raise ConfigError(
            f"{client.ref.repository} has no image {reference!r} at "
            f"{client.ref.address}",
            hint="check the repository name and the tag or digest",
            reference="image-not-found",
        )
    data, media_type = fetched
    if media_type != MEDIA_TYPE_MANIFEST:
        raise ConfigError(
            f"{reference} is a {media_type}, not an image manifest",
            hint="pull a single-platform image by its manifest digest",
            reference="image-not-manifest",
        )
    report = TransferReport(digest_bytes(data))
    _pull_children(client, layout, data, report, progress)
    queue = [report.digest]
    seen = set(queue)
    while queue:
        subject = queue.pop(0)
        for referrer in client.referrers(subject):
            if referrer.digest in seen:
                continue
            seen.add(referrer.digest)
            got = client.get_manifest(referrer.digest)
            if got is None:
                raise IntegrityError(
                    f"the registry lists referrer {referrer.digest} but does not "
                    "serve it",
                    reference="referrer-missing",
                )
            _pull_children(client, layout, got[0], report, progress)
            layout.add_manifest(got[0])
            report.referrers.append(referrer.digest)
            queue.append(referrer.digest)
    # The tag comes last: an interrupted pull leaves no tagged image behind.
    layout.add_manifest(data, tag=tag)
    return report


def _pull_children(
    client: RegistryClient,
    layout: Layout,
    data: bytes,
    report: TransferReport,
    progress: Progress | None,
) -> None:
    document = json.loads(data)
    children = []
    if isinstance(document.get("config"), dict):
        children.append(Descriptor.from_dict(document["config"]))
    children += [Descriptor.from_dict(d) for d in document.get("layers") or []]
    for child in children:
        if client.pull_blob(layout, child):
            report.blobs_sent += 1
            report.bytes_sent += child.size
            _say(progress, "received", child)
        else:
            report.blobs_skipped += 1
