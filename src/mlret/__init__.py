"""mlret: language-mixing strategies for fine-tuning multilingual bi-encoders."""

__version__ = "0.1.0"
