"""``python -m quant_assets``: the same commands as the ``quant-assets`` console script."""

from quant_assets.cli import main

if __name__ == "__main__":
    main()
