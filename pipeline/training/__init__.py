"""What the train and tune stages share: runtime setup, callbacks, and the classification metrics."""
