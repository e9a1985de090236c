"""Publish a finalized local dataset to the Hugging Face Hub: validate, card, resumable upload, version tag.

Like :meth:`LeRobotDataset.push_to_hub` (create the dataset repo, upload, move the ``v3.0`` codebase-version tag
so that ``LeRobotDataset(repo_id)`` resolves it), with what generated datasets need on top:

- it refuses a dataset that is not finalized or is incomplete (:func:`~lerobot_diffrl.data.dataset_io.check_finalized`
  and a real ``LeRobotDataset(repo_id, root=root)`` load) instead of publishing something nobody can load;
- it uploads with ``HfApi.upload_large_folder``, which hashes, pre-uploads and commits in batches and keeps
  its progress under ``<root>/.cache/huggingface/``: rerunning the same command after an interruption resumes;
- the calls around it (create repo/branch, tag) retry transient Hub errors (HTTP 5xx, 408, 429, connection
  errors) with bounded exponential back-off;
- the exact file list is computed with the same filter ``upload_large_folder`` applies, so ``dry_run`` returns
  what would be uploaded; temporary and staging files (``images/``, hidden folders such as ``.cache/``,
  ``*.tmp``, locks, partial downloads) are excluded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from lerobot_diffrl.data.card import write_dataset_card
from lerobot_diffrl.data.dataset_io import check_finalized, open_lerobot_dataset
from lerobot_diffrl.errors import ConfigError, DatasetError
from lerobot_diffrl.hub import hub_offline

logger = logging.getLogger(__name__)

#: Never uploaded: LeRobot's temporary PNG frames, hidden files/folders (the upload resume cache lives in
#: ``.cache/huggingface``), temporary/partial files. ``upload_large_folder`` adds huggingface_hub's defaults.
IGNORE_PATTERNS: tuple[str, ...] = (
    "images/",
    ".*",
    "*/.*",
    "*.tmp",
    "*.temp",
    "*.lock",
    "*.part",
    "*.partial",
    "*.incomplete",
    "*~",
)
#: HTTP statuses worth retrying: request timeout, rate limit, server errors.
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_PUSH_MARKER = Path(".cache/huggingface/lerobot_diffrl_push.json")


def is_transient(err: BaseException) -> bool:
    """Whether ``err`` is a Hub/network error that may succeed on retry (never offline mode or 4xx).

    huggingface_hub 1.x talks httpx: a refused connection or a timeout is an ``httpx.TransportError``
    (``ConnectError``, ``ReadTimeout``, ...), which is not an ``OSError``.
    """
    import httpx
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(err, OfflineModeIsEnabled):
        return False
    if isinstance(err, HfHubHTTPError):
        status = err.response.status_code if err.response is not None else None
        return status is None or status in TRANSIENT_STATUS or status >= 500
    return isinstance(err, (httpx.TransportError, ConnectionError, TimeoutError))


def with_retries[T](
    fn: Callable[[], T],
    *,
    what: str,
    attempts: int = 5,
    base_delay_s: float = 2.0,
    max_delay_s: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn``; on a transient error wait ``base_delay_s * 2**k`` (capped) and retry, ``attempts`` in all."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as err:
            if not is_transient(err) or attempt == attempts:
                raise
            delay = min(max_delay_s, base_delay_s * 2 ** (attempt - 1))
            logger.warning("%s failed (%s); retry %d/%d in %.0f s", what, err, attempt, attempts - 1, delay)
            sleep(delay)
    raise AssertionError("unreachable")


def upload_file_list(root: Path) -> list[str]:
    """The sorted relative paths ``upload_large_folder`` uploads from ``root`` with :data:`IGNORE_PATTERNS`."""
    from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects

    root = Path(root)
    files = (p.relative_to(root).as_posix() for p in root.glob("**/*") if p.is_file())
    return sorted(filter_repo_objects(files, ignore_patterns=[*IGNORE_PATTERNS, *DEFAULT_IGNORE_PATTERNS]))


def check_repo_id(repo_id: str) -> None:
    """Raise :class:`ConfigError` unless ``repo_id`` is a valid '<namespace>/<name>' Hub repo id."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if repo_id.count("/") != 1:
        raise ConfigError(f"repo id '{repo_id}' must be '<user or org>/<name>'")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ConfigError(f"invalid repo id '{repo_id}': {err}") from None


def check_can_push(repo_id: str) -> None:
    """Fail fast, before any validation work, when a push cannot happen: offline mode or no credentials."""
    from huggingface_hub import get_token

    check_repo_id(repo_id)
    if hub_offline():
        raise DatasetError(f"cannot push to '{repo_id}': HF_HUB_OFFLINE is set; unset it to publish")
    if get_token() is None:
        raise DatasetError(
            f"cannot push to '{repo_id}': not logged in to the Hugging Face Hub; run `hf auth login` "
            "or set HF_TOKEN"
        )


def validate_for_push(root: Path, repo_id: str) -> dict:
    """Refuse (:class:`DatasetError`) a dataset that is not finalized, is incomplete or does not load."""
    check_repo_id(repo_id)
    info = check_finalized(root, videos=True)
    # A placeholder repo id: should LeRobot still find a file missing, it must not fetch it from the real repo.
    dataset = open_lerobot_dataset(f"local/{Path(root).resolve().name}", Path(root), str(root))
    if len(dataset) != info["total_frames"] or dataset.meta.total_episodes != info["total_episodes"]:
        raise DatasetError(f"{root} loads {len(dataset)} frames, info.json says {info['total_frames']}")
    return info


def _reset_resume_cache_for_other_repo(root: Path, repo_id: str) -> None:
    """upload_large_folder's resume cache is per folder, not per repo: drop it when the target repo changed."""
    marker = root / _PUSH_MARKER
    cache = root / ".cache" / "huggingface" / "upload"
    if marker.is_file() and json.loads(marker.read_text()).get("repo_id") != repo_id and cache.exists():
        shutil.rmtree(cache)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"repo_id": repo_id}) + "\n")


def _hub_error(err: Exception, repo_id: str, root: Path) -> DatasetError:
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(err, OfflineModeIsEnabled):
        return DatasetError(f"cannot push to '{repo_id}': HF_HUB_OFFLINE is set; unset it to publish")
    if (
        isinstance(err, HfHubHTTPError)
        and err.response is not None
        and err.response.status_code in (401, 403)
    ):
        return DatasetError(
            f"the Hub refused access to '{repo_id}' (HTTP {err.response.status_code}): log in with "
            "`hf auth login` or set HF_TOKEN to a token with write access to its namespace"
        )
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if is_transient(err):
        return DatasetError(
            f"cannot reach the Hugging Face Hub to push '{repo_id}' ({type(err).__name__}: {reason[:300]}); "
            "check the network, then run the same command again: the upload resumes where it stopped"
        )
    return DatasetError(
        f"pushing {root} to '{repo_id}' failed: {type(err).__name__}: {reason}. Nothing is lost: run the same "
        "command again to resume the upload"
    )


def push_dataset(
    root: Path,
    repo_id: str,
    *,
    private: bool = False,
    dry_run: bool = False,
    revision: str | None = None,
    write_card: bool = True,
    license: str = "apache-2.0",
    attempts: int = 5,
) -> list[str]:
    """Validate ``root``, write its card, and upload it to the dataset repo ``repo_id``.

    Returns the sorted relative paths that are uploaded (with ``dry_run``: that would be; the card is written in
    both cases so the list and the card are exactly what a real push sends). ``revision`` is a branch, created if
    missing. Raises :class:`DatasetError` for an invalid dataset, offline mode, missing credentials, or a Hub
    error that persists after retries.
    """
    import httpx
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RevisionNotFoundError
    from lerobot.datasets.lerobot_dataset import CODEBASE_VERSION

    root = Path(root)
    if not dry_run:
        check_can_push(repo_id)
    validate_for_push(root, repo_id)
    if write_card:
        write_dataset_card(root, repo_id=repo_id, license=license)
    files = upload_file_list(root)
    if dry_run:
        return files
    api = HfApi()
    try:
        with_retries(
            lambda: api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True),
            what="create_repo",
            attempts=attempts,
        )
        if revision:
            with_retries(
                lambda: api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True),
                what="create_branch",
                attempts=attempts,
            )
        _reset_resume_cache_for_other_repo(root, repo_id)
        with_retries(
            lambda: api.upload_large_folder(
                repo_id=repo_id,
                folder_path=root,
                repo_type="dataset",
                revision=revision,
                private=private,
                ignore_patterns=list(IGNORE_PATTERNS),  # a copy: it extends the list in place
                num_workers=max(1, min(8, (os.cpu_count() or 2) - 1)),
            ),
            what="upload_large_folder",
            attempts=attempts,
        )

        def retag() -> None:
            with contextlib.suppress(RevisionNotFoundError):
                api.delete_tag(repo_id, tag=CODEBASE_VERSION, repo_type="dataset")
            api.create_tag(repo_id, tag=CODEBASE_VERSION, revision=revision, repo_type="dataset")

        with_retries(retag, what="tag", attempts=attempts)
    except DatasetError:
        raise
    except (OSError, ValueError, httpx.HTTPError) as err:  # HfHubHTTPError is both; httpx transport errors
        raise _hub_error(err, repo_id, root) from None
    logger.info("pushed %d files to https://huggingface.co/datasets/%s", len(files), repo_id)
    return files
