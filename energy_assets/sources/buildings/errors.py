"""Errors raised by the buildings source: which request, file, archive member, line and column, and what to do."""

from __future__ import annotations

from energy_assets.errors import DataValidationError, EnergyAssetsError


class ZenodoApiError(EnergyAssetsError):
    """Zenodo refused a request or could not be reached; carries the status and an excerpt of the answer.

    `client_retried` is True when the client already spent its retries, resumes or deadline on this failure.
    """

    def __init__(
        self,
        url: str,
        message: str,
        *,
        status: int | None = None,
        server_message: str = "",
        client_retried: bool = False,
    ) -> None:
        self.url = url
        self.client_retried = client_retried
        self.status = status
        self.server_message = server_message
        status_text = f" -> HTTP {status}" if status is not None else ""
        server_text = f" (server said: {server_message})" if server_message else ""
        super().__init__(f"GET {url}{status_text}: {message}{server_text}")


class ZenodoTransferError(ZenodoApiError):
    """The connection broke while a record's body was arriving: the step's retry may cure it."""

    transient = True


class ZenodoRecordGoneError(ZenodoApiError):
    """The record was deleted (HTTP 410 with a tombstone)."""


class ZenodoRecordNotFoundError(ZenodoApiError):
    """No record with that id (HTTP 404); a concept record id answers 404 too."""


class ZenodoFilesUnavailableError(ZenodoApiError):
    """The record exists but lists no downloadable files (restricted or embargoed), or not the wanted key."""


class ZenodoDownloadError(ZenodoApiError):
    """A download did not complete: the deadline passed or the connection kept breaking."""


class ChecksumMismatchError(DataValidationError):
    """A downloaded file's size or md5 differs from what the record lists; nothing was cached."""

    def __init__(self, key: str, what: str, expected: str, actual: str) -> None:
        self.key = key
        self.what = what
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{key}: {what} mismatch (record lists {expected}, download gave {actual}); the download was"
            " discarded and nothing was cached. Retry; if it persists the record or a proxy is serving other bytes."
        )


class Bdg2ArchiveError(DataValidationError):
    """The BDG2 zip (or one of its members) is not what the source expects."""


class CorruptArchiveError(Bdg2ArchiveError):
    """The file is not a readable zip, or a member fails its CRC."""


class MissingMemberError(Bdg2ArchiveError):
    """An expected member (`data/meters/cleaned/electricity_cleaned.csv`, ...) is not in the archive."""


class LfsPointerError(Bdg2ArchiveError):
    """A Git LFS pointer file stands where data was expected (copies of BDG2 in git repositories)."""


class Bdg2CsvError(DataValidationError):
    """A CSV member has a bad header, a ragged row, a non-numeric reading or a bad timestamp.

    `line` is the 1-based physical line in the member (the header is line 1); `column` the header name.
    """

    def __init__(
        self, member: str, problem: str, *, line: int | None = None, column: str | None = None
    ) -> None:
        self.member = member
        self.line = line
        self.column = column
        self.problem = problem
        where = member
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(
            f"{where}: {problem}. Nothing from this member was published; fix or replace the archive"
            " (or report it upstream) and run again."
        )
