"""Domain errors with a message a client can act on; one handler maps them to HTTP (see main.py)."""


class ServiceError(Exception):
    """Base class: status_code is the HTTP status the error maps to; str(error) is the message."""

    status_code = 400


class BadRequest(ServiceError):
    """Malformed request: missing field, bad query, unparsable body."""

    status_code = 400


class Unauthorized(ServiceError):
    """No API key, or not a configured one (only when MNIST_API_KEYS is set)."""

    status_code = 401


class Forbidden(ServiceError):
    """Not allowed by the server's configuration (model control off)."""

    status_code = 403


class NotFound(ServiceError):
    """Unknown layer, model or version."""

    status_code = 404


class PayloadTooLarge(ServiceError):
    """Body or file over the configured limit."""

    status_code = 413


class UnsupportedImage(ServiceError):
    """Bytes that are not an image format we decode."""

    status_code = 415


class UnusableImage(ServiceError):
    """A valid image that cannot be used: blank, too many pixels, too many frames."""

    status_code = 422


class ModelRefused(ServiceError):
    """A model version asked to load failed its checks; what served before keeps serving."""

    status_code = 422


class InferenceFailed(ServiceError):
    """The model run for a batch failed; only that batch's callers get this error."""

    status_code = 500


class ModelNotReady(ServiceError):
    """The model is not loaded (yet): the app is starting, or was built without its lifespan."""

    status_code = 503


class BatcherClosed(ServiceError):
    """The server is shutting down (or not started): no new model runs are taken."""

    status_code = 503


class ModelLoadError(Exception):
    """The model file is missing, corrupt, does not match its card or breaks the contract."""
