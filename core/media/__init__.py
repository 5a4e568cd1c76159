"""Reading media: image files, videos (decoding, probing, single frames) and writing H.264."""
