"""A record of the AWS operations backupctl makes, to check an IAM policy against.

With BACKUPCTL_AWS_CALL_LOG naming a file, every boto3 client backupctl creates
appends one JSON line per API call to it: the service, the operation, and the
request parameters that name a resource (bucket, key, prefix, queue URL). Never a
body, a header or a credential.
"""

from __future__ import annotations

import json
import os
from typing import Any

CALL_LOG_ENV = "BACKUPCTL_AWS_CALL_LOG"
# What an IAM policy's resources and conditions are judged on, and what changes the
# action a call needs (a VersionId, an Object Lock asked for on upload).
RESOURCE_PARAMS = ("Bucket", "Key", "Prefix", "QueueUrl", "VersionId", "ObjectLockMode")


def record_calls(client: Any) -> Any:
    """Make `client` log its calls to $BACKUPCTL_AWS_CALL_LOG, if set; return it."""
    path = os.environ.get(CALL_LOG_ENV)
    if not path:
        return client
    service = client.meta.service_model.service_name

    def on_call(params: dict[str, Any], model: Any, **_: Any) -> None:
        line = {"service": service, "operation": model.name}
        line.update({k: str(params[k]) for k in RESOURCE_PARAMS if params.get(k) is not None})
        if isinstance(params.get("Delete"), dict):  # DeleteObjects: the keys it names
            objects = params["Delete"].get("Objects", [])
            line["Objects"] = json.dumps(
                [{k: o[k] for k in ("Key", "VersionId") if k in o} for o in objects]
            )
        # One write of one line in append mode: lines of threads and processes
        # that share the file never interleave.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (json.dumps(line) + "\n").encode())
        finally:
            os.close(fd)

    # Before the request is built: `params` are the caller's, once per call (not per
    # retry), paginated calls included. Returning None leaves them unchanged.
    client.meta.events.register("provide-client-params", on_call)
    return client
