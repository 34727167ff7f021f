"""Errors raised by the Energy-Charts source: what failed, for which endpoint, parameters, partition and field."""

from __future__ import annotations

from collections.abc import Mapping

from energy_assets.errors import DataValidationError, EnergyAssetsError


def format_params(params: Mapping[str, object]) -> str:
    """`country=de&start=2025-03-30&end=2025-03-30`, in the order given."""
    return "&".join(f"{key}={value}" for key, value in params.items())


class EnergyChartsApiError(EnergyAssetsError):
    """The API refused a request or could not be reached; carries the server's own message.

    `client_retried` is True when the client already spent its retries (or its deadline) on this failure,
    so a step retry would only repeat them.
    """

    def __init__(
        self,
        endpoint: str,
        params: Mapping[str, object],
        message: str,
        *,
        status: int | None = None,
        server_message: str | None = None,
        client_retried: bool = False,
    ) -> None:
        self.endpoint = endpoint
        self.client_retried = client_retried
        self.params = dict(params)
        self.status = status
        self.server_message = server_message
        where = f"GET /{endpoint}?{format_params(params)}"
        status_text = f" -> HTTP {status}" if status is not None else ""
        server_text = f": {server_message}" if server_message else ""
        super().__init__(f"{where}{status_text}: {message}{server_text}")


class EnergyChartsTransferError(EnergyChartsApiError):
    """The connection broke, or stalled past the read timeout, while the body was arriving.

    The client does not repeat the request itself (`client_retried` is False): the step's retry may.
    """

    transient = True  # a body cut mid-transfer may well arrive whole on the next try


class EnergyChartsDeadlineError(EnergyChartsApiError):
    """A request (retries and body included) did not finish within the client's overall deadline."""

    def __init__(
        self, endpoint: str, params: Mapping[str, object], message: str, *, deadline_s: float
    ) -> None:
        self.deadline_s = deadline_s
        super().__init__(endpoint, params, message, client_retried=True)


class EnergyChartsResponseTooLargeError(EnergyChartsApiError):
    """A response body is larger than the client accepts; nothing of it was kept."""

    def __init__(
        self, endpoint: str, params: Mapping[str, object], message: str, *, max_bytes: int, status: int
    ) -> None:
        self.max_bytes = max_bytes
        super().__init__(endpoint, params, message, status=status)


class SnapshotNotRecordedError(EnergyChartsApiError):
    """The snapshot client has no recorded response for the request."""

    transient = False  # a recording that is not there will not appear on a retry


class EnergyChartsResponseError(DataValidationError):
    """A response does not have the shape or values the API documents; nothing from it may be loaded."""

    def __init__(self, endpoint: str, partition: str, field: str, problem: str) -> None:
        self.endpoint = endpoint
        self.partition = partition
        self.field = field
        self.problem = problem
        super().__init__(f"/{endpoint} response for partition {partition}, field {field}: {problem}")
