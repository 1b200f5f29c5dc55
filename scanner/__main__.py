from scanner.cli import app

app(prog_name="camscan")
