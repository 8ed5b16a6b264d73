"""Demand forecasting per product: forecasters, their metrics and the rolling-origin backtest.

Series are long frames in Nixtla's layout (``unique_id``, ``ds``, ``y``), one row per product and
period with no gaps (``panel.dense_panel`` fills the days without a sale with zeros).
"""
