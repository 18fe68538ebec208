from .rss_head import RSSHead

__all__ = ['RSSHead']
