module example.com/jsonl_prices

go 1.24
