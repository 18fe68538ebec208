from .rss_encoder_decoder import RSSEncoderDecoder

__all__ = ['RSSEncoderDecoder']
