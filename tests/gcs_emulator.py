"""A GCS emulator on loopback (PyPI gcp-storage-emulator) that honours generation preconditions.

The emulator ignores ``ifGenerationMatch``; real GCS answers 412 when it does not hold. The lease
lock depends on exactly that, so this fixture adds the check to the emulator's upload handler
(media uploads name the object in the query, multipart ones in the metadata part).
The emulator serves one request at a time, so check-then-write is atomic, as it is on GCS.
"""

import socket
from http import HTTPStatus

from gcp_storage_emulator import server as emulator_server
from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import objects


def _current_generation(storage, bucket: str, name: str) -> int:
    try:
        return int(storage.get_file_obj(bucket, name)["generation"])
    except NotFound:
        return 0


def _insert_with_preconditions(request, response, storage, *args, **kwargs):
    wanted = request.query.get("ifGenerationMatch")
    if wanted is not None:
        name = request.query.get("name", [None])[0] or ((request.data or {}).get("meta") or {}).get("name")
        if name is not None and _current_generation(storage, request.params["bucket_name"], name) != int(wanted[0]):
            response.status = HTTPStatus.PRECONDITION_FAILED
            response.json({"error": {"code": 412, "message": "Precondition Failed"}})
            return None
    return objects.insert(request, response, storage, *args, **kwargs)


def _install_preconditions() -> None:
    for _, methods in emulator_server.HANDLERS:
        for method, handler in list(methods.items()):
            if handler is objects.insert:
                methods[method] = _insert_with_preconditions


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GcsEmulator:
    """Start with a bucket; ``host`` is what STORAGE_EMULATOR_HOST should say."""

    def __init__(self, bucket: str):
        _install_preconditions()
        self.port = free_port()
        self.server = emulator_server.create_server("127.0.0.1", self.port, in_memory=True, default_bucket=bucket)
        self.host = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "GcsEmulator":
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()
