// A Go wasip1 command: upper-cases stdin, prints the number of arguments, exits 3 on "fail".
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	data, _ := io.ReadAll(bufio.NewReader(os.Stdin))
	fmt.Printf("%s|%d\n", strings.ToUpper(string(data)), len(os.Args))
	if strings.TrimSpace(string(data)) == "fail" {
		os.Exit(3)
	}
}
