"""Image discovery, class names, sample data, validation suite, split, augmentation and tf.data inputs."""
