namespace lazyroot {}
