"""``/play``: try a model in the browser with SODA's four prompts, through the code ``soda generate`` runs.

A submitted form is checked (`play_inputs`), queued (`play_jobs`) and answered at once with a job
id; the worker loads the model once per checkpoint (`play_models.ModelCache`), writes the uploads
under ``{prefix}/play/{id}/inputs/`` and calls `soda_jax.inference.requests.run_task`, which writes the
same ``{task}.json`` and WAV/text ``soda generate`` writes (`play_results`). Routes:

- ``GET /play``: the page; ``GET /play/results``: its results table (HTML, the page reloads it);
- ``POST /api/play`` (multipart form): 202 ``{"id", ...}``, or 400/413 ``{"error"}`` naming the field;
- ``GET /api/play/job/{id}``: the job's state; ``GET /api/play/models``: models offered and loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from soda_jax import fileio
from soda_jax.dashboard import play_inputs, play_results, play_shots
from soda_jax.dashboard.play_inputs import MAX_REQUEST_BYTES, PlayInputError, PlayRequest
from soda_jax.dashboard.play_jobs import GENERATING, LOADING, Job, JobQueue
from soda_jax.dashboard.play_models import ModelCache, ModelDirectories
from soda_jax.dashboard.store import PrefixStore
from soda_jax.inference.prompts import sampling_params
from soda_jax.inference.requests import run_task

MAX_FORM_FIELDS = 40
"""Form fields a request may carry (the page sends about a dozen)."""


class Playground:
    """The playground of one dashboard: its model directories, model cache, jobs and routes."""

    def __init__(self, store: PrefixStore, model_roots: Sequence[str] = ()):
        self.store = store
        self.models = ModelDirectories(store, model_roots)
        self.cache = ModelCache()
        self.jobs = JobQueue()

    # ----------------------------------------------------------------------------- the work
    def run(self, request: PlayRequest, job: Job) -> dict[str, Any]:
        """Load (or reuse) the model, write the uploads, run the task; a failure removes the result."""
        job.state = LOADING
        cached, job.loaded_model = self.cache.get(request.model.url)
        job.state = GENERATING
        out = play_results.result_dir(self.store.paths, job.id)
        try:
            inputs: dict[str, Any] = dict(request.texts)
            for upload in request.uploads:
                inputs[upload.field] = play_results.save_upload(out, upload)
            if request.shots:
                assert request.shot_set is not None  # read_request resolves it whenever shots > 0
                inputs["shots"] = play_shots.draw_shots(request.shot_set, request.shots, request.sampling["seed"])
            params = sampling_params(request.task, cached.loaded.vocab, **request.sampling)
            result = run_task(
                request.task,
                cached.loaded,
                out,
                params=params,
                codec=cached.codec,
                inputs=inputs,
                prompt_seconds=request.prompt_seconds,
            )
        except BaseException:
            play_results.remove(out)
            raise
        return play_results.result_row(
            self.store.paths, job.id, result.record, fileio.join(out, f"{request.task}.json")
        )

    # ------------------------------------------------------------------------------- routes
    def routes(self, render: Callable[..., Response]) -> list[Route]:
        store = self.store

        def page(request: Request) -> Response:
            sets = play_shots.shot_sets(store)
            return render(
                request,
                "play.html",
                models=self.models.choices(),
                shot_sets=sets,
                tasks=play_inputs.PLAY_TASKS,
                task_fields=play_inputs.TASK_FIELDS,
                defaults=play_inputs.task_defaults_json(),
                results=play_results.list_results(store.paths),
                max_upload=play_inputs.MAX_UPLOAD_BYTES,
                max_shots=play_shots.MAX_SHOTS,
            )

        def results(request: Request) -> Response:
            return render(request, "play_results.html", results=play_results.list_results(store.paths))

        async def submit(request: Request) -> Response:
            length = request.headers.get("content-length")
            if length and length.isdigit() and int(length) > MAX_REQUEST_BYTES:
                return error(f"the request is {int(length):,} bytes, over the limit of {MAX_REQUEST_BYTES:,}", 413)
            try:
                form = await request.form(max_files=len(play_inputs.AUDIO_FIELDS), max_fields=MAX_FORM_FIELDS)
            except HTTPException as e:  # a malformed body or too many parts
                return error(f"unreadable form: {e.detail}", 400)
            try:
                play_request = await run_in_threadpool(self._read, form)
            except PlayInputError as e:
                return error(str(e), e.status)
            finally:
                await form.close()
            job = Job(play_results.new_result_id(), play_request.task, play_request.model.value)
            self.jobs.submit(job, lambda j: self.run(play_request, j))
            return JSONResponse(job.as_json(self.jobs.ahead_of(job)), status_code=202)

        def job_state(request: Request) -> Response:
            job = self.jobs.get(request.path_params["id"])
            if job is None:
                return error(f"no job {request.path_params['id']!r}", 404)
            return JSONResponse(job.as_json(self.jobs.ahead_of(job)))

        def models(request: Request) -> Response:
            return JSONResponse(
                {
                    "choices": [{"value": m.value, "kind": m.kind} for m in self.models.choices()],
                    "loaded": self.cache.loaded(),
                    "loads": self.cache.load_counts(),
                }
            )

        return [
            Route("/play", page),
            Route("/play/results", results),
            Route("/api/play", submit, methods=["POST"]),
            Route("/api/play/job/{id}", job_state),
            Route("/api/play/models", models),
        ]

    def _read(self, form: FormData) -> PlayRequest:
        fields = {key: form.get(key) for key in form.keys()}
        return play_inputs.read_request(
            fields, self.models.resolve, lambda requested: play_shots.resolve_shot_set(self.store, requested)
        )

    def shutdown(self) -> None:
        self.jobs.shutdown()


def error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
