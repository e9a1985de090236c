"""The shard's episode writer: frames in memory -> encoded videos + tabular data, committed per episode.

What makes lerobot's ``add_frame``/``save_episode`` loop (0.6.1 as 0.4) slow for simulated data (``lerobot#1959``): every
camera frame is PNG-compressed to disk in ``add_frame``, then read back and decoded to be video-encoded in
``save_episode``, one episode at a time while the recording loop waits, and every ``save_episode`` re-muxes the
growing per-camera MP4 to append the new episode. Here an episode arrives complete (the generation loop holds
its frames in memory), and:

- each camera is encoded straight from the uint8 arrays by PyAV (which releases the GIL), one single-threaded
  encoder per camera and episode on a thread pool sized to the cores, so cameras and consecutive episodes
  encode in parallel while the caller goes on stepping simulators;
- codec settings are lerobot's (``libsvtav1``, GOP 2, CRF 30, ``yuv420p``; ``h264``/``hevc`` selectable), so
  the videos decode exactly like ones lerobot writes;
- per-episode statistics are lerobot's (``compute_episode_stats`` for tabular features; for cameras the same
  frame sampling, down-scaling and quantile estimator, computed from exact pixel histograms, which is faster),
  from memory;
- the episode is committed atomically to the shard's staging area (:mod:`lerobot_diffrl.data.staging`); the
  v3 files are assembled once, at the end, by :mod:`lerobot_diffrl.data.packing`.
"""

from __future__ import annotations

import os
import threading
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_diffrl.data.features import ACTION, DONE, REWARD, SUCCESS, video_keys
from lerobot_diffrl.data.staging import FRAMES_FILE, AttemptRecord, Staging
from lerobot_diffrl.envs.lerobot_batch import OBS_ENV_STATE, OBS_STATE
from lerobot_diffrl.errors import ConfigError, DatasetError

VCODECS = ("libsvtav1", "h264", "hevc")
#: Tabular columns a staged episode stores (lerobot adds index/episode_index/task_index when packing), plus
#: ``observation.environment_state`` when the dataset records it.
TABULAR_KEYS = (OBS_STATE, ACTION, REWARD, DONE, SUCCESS)


def tabular_keys(features: dict[str, dict]) -> tuple[str, ...]:
    """The tabular columns of a dataset with these features (``observation.environment_state`` optional)."""
    return (OBS_STATE, OBS_ENV_STATE, *TABULAR_KEYS[1:]) if OBS_ENV_STATE in features else TABULAR_KEYS


@dataclass
class EpisodeFrames:
    """One episode in memory, frame t = (observation t, action t, reward/done/success after action t).

    ``images`` maps each camera key to (T, H, W, 3) uint8 upright frames; ``state`` is (T, 8), ``action``
    (T, 7), ``reward``/``done``/``success`` (T,); ``env_state`` (T, D) float32 object states when the dataset
    records ``observation.environment_state``, else None.
    """

    images: dict[str, np.ndarray]
    state: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    done: np.ndarray
    success: np.ndarray
    task: str
    env_state: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.state.shape[0])

    def check(self, features: dict[str, dict]) -> None:
        """Validate shapes and dtypes once per episode (lerobot validates every frame)."""
        n = len(self)
        if n < 1:
            raise DatasetError("an episode needs at least one frame")
        if not self.task:
            raise DatasetError("an episode needs a task string")
        if set(self.images) != set(video_keys(features)):
            raise DatasetError(f"cameras {sorted(self.images)} != dataset cameras {video_keys(features)}")
        for key, frames in self.images.items():
            shape = tuple(features[key]["shape"])
            if frames.dtype != np.uint8 or frames.shape != (n, *shape):
                raise DatasetError(f"{key}: expected uint8 {(n, *shape)}, got {frames.dtype} {frames.shape}")
        if (self.env_state is None) != (OBS_ENV_STATE not in features):
            records = "records" if OBS_ENV_STATE in features else "does not record"
            raise DatasetError(
                f"the dataset {records} {OBS_ENV_STATE} but the episode "
                + ("has none" if self.env_state is None else "has one")
            )
        for key, value in self.tabular().items():
            want = (n, *features[key]["shape"])
            if value.shape != want:
                raise DatasetError(f"{key}: expected shape {want}, got {value.shape}")

    def tabular(self) -> dict[str, np.ndarray]:
        """Tabular columns as lerobot's episode buffer holds them ((T, *shape), scalars as (T, 1))."""
        columns = {OBS_STATE: np.asarray(self.state, dtype=np.float32)}
        if self.env_state is not None:
            columns[OBS_ENV_STATE] = np.asarray(self.env_state, dtype=np.float32)
        return columns | {
            ACTION: np.asarray(self.action, dtype=np.float32),
            REWARD: np.asarray(self.reward, dtype=np.float32).reshape(-1, 1),
            DONE: np.asarray(self.done, dtype=bool).reshape(-1, 1),
            SUCCESS: np.asarray(self.success, dtype=bool).reshape(-1, 1),
        }


def encode_video(
    frames: np.ndarray, path: Path, fps: int, vcodec: str = "libsvtav1", threads: int | None = 1
) -> None:
    """Encode (T, H, W, 3) uint8 frames to ``path`` with lerobot's settings for ``vcodec``.

    ``threads`` bounds the encoder's own threads (SVT-AV1 ``lp``): one per stream and several streams in
    parallel scales better on few cores than one wide encoder (measured 402 vs 360 frames/s on 2 cores).
    """
    import av
    from lerobot.configs.video import RGBEncoderConfig

    # lerobot's own GOP/CRF/preset for the codec (and its thread option), so our files decode like its own.
    options = RGBEncoderConfig(vcodec=vcodec).get_codec_options(encoder_threads=threads, as_strings=True)
    height, width = frames.shape[1:3]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(vcodec, fps, options=options)
        stream.pix_fmt = "yuv420p"
        stream.width, stream.height = width, height
        stream.time_base = Fraction(1, fps)
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            vf.pts = i
            vf.time_base = Fraction(1, fps)
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _histogram_quantile(hist: np.ndarray, edges: np.ndarray, target: float) -> float:
    """lerobot's quantile estimate from a histogram (``RunningQuantileStats._compute_single_quantile``)."""
    cumsum = np.cumsum(hist)
    idx = int(np.searchsorted(cumsum, target))
    if idx == 0:
        return float(edges[0])
    if idx >= len(cumsum):
        return float(edges[-1])
    before = cumsum[idx - 1]
    in_bin = cumsum[idx] - before
    if in_bin == 0:
        return float(edges[idx])
    return float(edges[idx] + (target - before) / in_bin * (edges[idx + 1] - edges[idx]))


def image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-episode camera statistics as lerobot defines them, from exact per-channel histograms of uint8 pixels.

    Same frame sampling (``sample_indices``) and down-scaling (``auto_downsample_height_width``) as lerobot's
    ``compute_episode_stats``, and the same quantile estimator (5000 bins between min and max, interpolated),
    but computed from exact 256-value per-channel histograms (OpenCV): ~20x faster than feeding millions of
    pixels to ``RunningQuantileStats``, which matters because the writer computes them while simulators step.
    """
    import cv2
    from lerobot.datasets.compute_stats import DEFAULT_QUANTILES, auto_downsample_height_width, sample_indices

    index = sample_indices(len(frames))
    # auto_downsample_height_width's stride, applied to the HWC frames directly (no transposed copies)
    height, width = frames.shape[1:3]
    probe = auto_downsample_height_width(np.empty((1, height, width), dtype=np.uint8))
    step_h, step_w = height // probe.shape[1], width // probe.shape[2]
    sampled = np.ascontiguousarray(frames[index][:, ::step_h, ::step_w, :])
    channels = sampled.shape[-1]
    tall = sampled.reshape(-1, sampled.shape[2], channels)  # one image: OpenCV histograms it in one call
    values = np.arange(256, dtype=np.float64)
    per_channel: dict[str, list[float]] = {k: [] for k in ("min", "max", "mean", "std")}
    quantiles: dict[float, list[float]] = {q: [] for q in DEFAULT_QUANTILES}
    for c in range(channels):
        counts = cv2.calcHist([tall], [c], None, [256], [0, 256]).ravel().astype(np.float64)
        n = counts.sum()
        present = np.flatnonzero(counts)
        lo, hi = float(present[0]), float(present[-1])
        mean = float(counts @ values / n)
        per_channel["min"].append(lo)
        per_channel["max"].append(hi)
        per_channel["mean"].append(mean)
        per_channel["std"].append(float(np.sqrt(max(counts @ values**2 / n - mean**2, 0.0))))
        edges = np.linspace(lo - 1e-10, hi + 1e-10, 5001)
        bins = np.clip(np.searchsorted(edges, values[present], side="right") - 1, 0, 4999)
        hist = np.bincount(bins, weights=counts[present], minlength=5000)
        for q in DEFAULT_QUANTILES:
            quantiles[q].append(_histogram_quantile(hist, edges, q * n))
    stats = {k: np.asarray(v).reshape(-1, 1, 1) / 255.0 for k, v in per_channel.items()}
    stats.update(
        {f"q{int(q * 100):02d}": np.asarray(v).reshape(-1, 1, 1) / 255.0 for q, v in quantiles.items()}
    )
    stats["count"] = np.array([len(index)])
    return stats


def tabular_stats(frames: EpisodeFrames, features: dict[str, dict]) -> dict[str, dict[str, np.ndarray]]:
    """lerobot's own ``compute_episode_stats`` for the tabular columns."""
    from lerobot.datasets.compute_stats import compute_episode_stats

    with warnings.catch_warnings():  # lerobot histograms the bool columns as uint8 and says so every episode
        warnings.filterwarnings("ignore", message="Converting input from bool", category=RuntimeWarning)
        return compute_episode_stats(frames.tabular(), {k: features[k] for k in tabular_keys(features)})


def frames_table(frames: EpisodeFrames, fps: int) -> pa.Table:
    """The episode's tabular columns (plus ``frame_index``/``timestamp``) as Arrow, in lerobot's layout."""
    n = len(frames)
    columns: dict[str, pa.Array] = {}
    for key, value in frames.tabular().items():
        if value.shape[1] == 1:
            columns[key] = pa.array(value[:, 0])
        else:
            flat = pa.array(np.ascontiguousarray(value).reshape(-1))
            columns[key] = pa.FixedSizeListArray.from_arrays(flat, value.shape[1])
    columns["frame_index"] = pa.array(np.arange(n, dtype=np.int64))
    columns["timestamp"] = pa.array(np.arange(n, dtype=np.float32) / np.float32(fps))
    return pa.table(columns)


def _jsonable(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, list]]:
    return {k: {s: np.asarray(v).tolist() for s, v in d.items()} for k, d in stats.items()}


class EpisodeWriter:
    """Encodes and commits episodes to a shard's staging area in the background.

    ``add`` returns at once (it blocks only when ``max_pending`` episodes are still being written, which bounds
    memory); ``flush`` waits for everything and re-raises the first failure; ``close`` is ``flush`` plus
    shutting the thread pools down, and is safe to call twice. Use as a context manager.
    """

    def __init__(
        self,
        staging: Staging,
        features: dict[str, dict],
        fps: int,
        *,
        vcodec: str = "libsvtav1",
        encoder_workers: int | None = None,
        max_pending: int | None = None,
    ):
        if vcodec not in VCODECS:
            raise ConfigError(f"vcodec must be one of {', '.join(VCODECS)}; got {vcodec!r}")
        # lerobot resolves the codec with a lazy ``from lerobot.datasets import ...``; run it once here, in this
        # thread, so that no encoder thread imports ``lerobot.datasets`` while another thread is still importing
        # it (seen as "cannot import name 'detect_available_encoders_pyav'" in a resumed generation).
        from lerobot.configs.video import RGBEncoderConfig

        RGBEncoderConfig(vcodec=vcodec)
        self.staging = staging
        self.features = features
        self.fps = int(fps)
        self.vcodec = vcodec
        self.cameras = video_keys(features)
        workers = encoder_workers or max(os.cpu_count() or 1, len(self.cameras))
        if workers < 1:
            raise ConfigError(f"encoder_workers must be >= 1; got {workers}")
        # Episodes in flight: enough to keep every encoder thread busy, few enough to bound memory.
        self.max_pending = max_pending or max(2, -(-workers // max(1, len(self.cameras))) + 1)
        self._encoders = ThreadPoolExecutor(workers, thread_name_prefix="video-encoder")
        self._episodes = ThreadPoolExecutor(self.max_pending, thread_name_prefix="episode-writer")
        self._slots = threading.BoundedSemaphore(self.max_pending)
        self._pending: list[Future] = []
        self._lock = threading.Lock()
        self._closed = False
        self.committed = 0
        staging.create()

    def add(self, record: AttemptRecord, frames: EpisodeFrames) -> None:
        """Queue a kept episode; it is durable once committed (``flush`` waits for that)."""
        if self._closed:
            raise DatasetError("this EpisodeWriter is closed")
        frames.check(self.features)
        self._raise_failures()
        self._slots.acquire()
        try:
            future = self._episodes.submit(self._write, record, frames)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        with self._lock:
            self._pending.append(future)

    def discard(self, record: AttemptRecord) -> None:
        """Record a finished attempt that is not kept (so a resumed run does not repeat it)."""
        self.staging.record_discarded(record)

    def _write(self, record: AttemptRecord, frames: EpisodeFrames) -> None:
        tmp = self.staging.temp_episode_dir(record.key)
        encodes = {
            key: self._encoders.submit(
                encode_video, frames.images[key], tmp / f"{key}.mp4", self.fps, self.vcodec
            )
            for key in self.cameras
        }
        stats = tabular_stats(frames, self.features)
        pq.write_table(frames_table(frames, self.fps), tmp / FRAMES_FILE)
        for key in self.cameras:
            stats[key] = image_stats(frames.images[key])
        for future in encodes.values():
            future.result()
        self.staging.commit_episode(tmp, record, {"stats": _jsonable(stats), "task": frames.task})
        with self._lock:
            self.committed += 1

    def _raise_failures(self) -> None:
        with self._lock:
            done = [f for f in self._pending if f.done()]
            self._pending = [f for f in self._pending if not f.done()]
        for future in done:
            future.result()  # re-raises a writer failure in the caller's thread

    def flush(self) -> None:
        """Wait until every queued episode is committed; re-raise the first failure."""
        while True:
            with self._lock:
                pending = list(self._pending)
            if not pending:
                return
            for future in pending:
                future.exception()
            self._raise_failures()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.flush()
        finally:
            self._episodes.shutdown(wait=True, cancel_futures=True)
            self._encoders.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
