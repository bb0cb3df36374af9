"""What evaluate and predict share: Grad-CAM explanations and the evaluation report."""
