// jsonl_prices: a Go wasip1 stream transform (stdin -> stdout, JSON Lines).
//
// Each input line is {"item": string, "price": number, "qty": integer}; each output line is
// {"item": ..., "qty": ..., "total_cents": price*qty in cents}.  Blank lines are skipped.  A line
// that is not such an object is reported on stderr with its line number and the program exits 1
// after processing the rest.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
)

type in struct {
	Item  *string  `json:"item"`
	Price *float64 `json:"price"`
	Qty   *int64   `json:"qty"`
}

type out struct {
	Item       string `json:"item"`
	Qty        int64  `json:"qty"`
	TotalCents int64  `json:"total_cents"`
}

func main() {
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 64*1024), 1024*1024)
	writer := bufio.NewWriter(os.Stdout)
	encoder := json.NewEncoder(writer)
	bad := 0
	for line := 1; scanner.Scan(); line++ {
		text := strings.TrimSpace(scanner.Text())
		if text == "" {
			continue
		}
		var record in
		if err := json.Unmarshal([]byte(text), &record); err != nil || record.Item == nil || record.Price == nil || record.Qty == nil {
			fmt.Fprintf(os.Stderr, "line %d: not an {item, price, qty} object\n", line)
			bad++
			continue
		}
		cents := int64(math.Round(*record.Price * 100))
		_ = encoder.Encode(out{Item: *record.Item, Qty: *record.Qty, TotalCents: cents * *record.Qty})
	}
	writer.Flush()
	if bad > 0 {
		os.Exit(1)
	}
}
