"""Recipes: the step builders, data mixes, model catalogue, sweeps and studies that experiment files
compose (docs/architecture.md). The top layer of the package: it imports every other layer and no
package imports it. Each experiment under ``experiments/`` is a short file that runs one of these."""
