"""Loading trained models and running them on images: what evaluate, predict, export and promote share."""
