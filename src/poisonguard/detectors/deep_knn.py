"""Deep k-NN (Peri et al. 2020): a row whose neighbours in the model's representation carry another label.

Clean-label poison is built to look like its class in the input but to sit among the target class in the
model's feature space; there its neighbours give it away. Same statistics as ``neighbor_disagreement``, on the
representation's neighbour graph instead of the raw columns. Runs only when the scan has a representation.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..context import ScanContext
from ..errors import ConfigError
from .base import register
from .neighbor_disagreement import NeighborDisagreementDetector


@register("deep_knn")
class DeepKNNDetector(NeighborDisagreementDetector):
    description = "the row's nearest neighbours in the model's representation carry a different label (deep k-NN)"
    default_k: ClassVar[int] = 20
    where: ClassVar[str] = " nearest rows in the model's representation are "

    def _neighbors(self, ctx: ScanContext, k: int) -> Any:
        return ctx.representation_neighbors(k)

    def _transfer(self, reference: ScanContext, ctx: ScanContext) -> None:
        raise ConfigError(
            "deep_knn reads a representation, which incremental scans do not carry yet; scan the whole data with "
            "embeddings instead of --baseline."
        )
