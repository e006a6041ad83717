"""Where data enters: one LightningDataModule per source, all sharing the split logic in `base`."""
