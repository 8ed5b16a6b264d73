"""What can go wrong when the product asks for a run, one class per answer a caller handles."""


class RequestError(ValueError):
    """The request is wrong (use case, client, parameter, days): refused before anything is submitted."""


class DeploymentError(RuntimeError):
    """The deployment could not be reached, refused the request, or lacks the use case's job."""


class RunNotFound(LookupError):
    """The deployment has no run with that id."""
