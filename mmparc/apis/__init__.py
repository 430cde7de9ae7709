"""mmparc's Python API for what the tools do (the tools are thin command lines over it)."""
from .inference import (IMAGE_SUFFIXES, MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, TASKS,
                        check_dataset_meta, check_images, expand_images, infer, task_of)

__all__ = ['infer', 'task_of', 'expand_images', 'check_images', 'check_dataset_meta', 'TASKS',
           'IMAGE_SUFFIXES', 'MAX_IMAGE_BYTES', 'MAX_IMAGE_PIXELS']
