"""One typed settings object for the service; every field also reads from an MNIST_* environment variable."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MiB = 1024 * 1024


class Settings(BaseSettings):
    """Service settings; `MNIST_<FIELD>` in the environment overrides each default."""

    model_config = SettingsConfigDict(env_prefix="MNIST_", extra="ignore")

    # Models
    model_repository: Path = Field(
        default=Path("models"),
        description="Folder of models, each <name>/<version>/model.onnx + card.json; every model in it is served.",
    )
    default_model: str = Field(
        default="mnist_cnn", min_length=1, description="The model a request without ?model= gets."
    )
    intra_op_threads: int = Field(default=1, ge=1, description="onnxruntime threads inside one run.")
    model_control: Literal["none", "explicit", "poll"] = Field(
        default="explicit",
        description="none: the repository is read once, at start-up; explicit: also on POST "
        "/v2/repository/models/<name>/load|unload and on SIGHUP; poll: also every repository_poll_s seconds.",
    )
    repository_poll_s: float = Field(
        default=5.0, gt=0.0, le=3600.0, description="With model_control=poll, seconds between re-reads."
    )

    # Micro-batching: concurrent requests share one onnxruntime run
    max_batch_size: int = Field(
        default=64, ge=1, description="Most images in one model run; a larger single request runs alone."
    )
    max_batch_delay_ms: float = Field(
        default=0.0,
        ge=0.0,
        le=1000.0,
        description="Most milliseconds a run that has company waits for more requests; a lone request never waits.",
    )

    # Uploads
    max_upload_bytes: int = Field(default=5 * MiB, ge=1, description="Largest body for one image (and per file).")
    max_batch_upload_bytes: int = Field(default=20 * MiB, ge=1, description="Largest body for /predict/batch.")
    max_batch_files: int = Field(default=64, ge=1, description="Most files in one /predict/batch request.")
    max_image_pixels: int = Field(
        default=4096 * 4096, ge=1, description="Most pixels an image may declare; larger is refused before decoding."
    )

    # HTTP
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins allowed by CORS, comma-separated; empty turns CORS off."
    )

    # Access (see docs/reliability.md); the keys are SecretStr: never shown by repr, str or a settings dump
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="API keys, comma-separated; when set, every path but health, the page, model metadata, the "
        "docs (and /metrics) needs one, as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'. Empty: no keys.",
    )
    metrics_require_key: bool = Field(default=False, description="With api_keys set, /metrics needs a key too.")

    # Server (used by `python -m service`; the flags override them)
    host: str = Field(default="0.0.0.0", description="Interface to bind.")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port to bind.")
    workers: int = Field(default=1, ge=1, description="Worker processes.")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        default="info", description="Log level of the server and the service."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text: uvicorn's lines, with the request ID; json: one JSON object per line, for log shippers.",
    )
    keep_alive_timeout: int = Field(
        default=75,
        ge=1,
        description="Seconds an idle keep-alive connection stays open; longer than a load balancer's idle timeout "
        "(often 60 s), so the server never closes a connection a client is about to reuse.",
    )
    shutdown_timeout: int = Field(
        default=8,
        ge=1,
        description="On SIGTERM, seconds that requests in flight get to finish before the server closes them "
        "(docker stop sends SIGKILL after 10).",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
