@echo off
rem bbt agent: silent install / update for a Group Policy computer startup script (runs as SYSTEM).
rem Usage: \\fileserver\bbt$\install-agent.cmd      (the share holds bbt-agent\, agent.ini, ca.crt, devices\)
setlocal
set "SRC=%~dp0"
set "DEST=%ProgramFiles%\bbt-agent"
set "CONF=%ProgramData%\bbt"
if not exist "%SRC%bbt-agent\bbt-agent.exe" (echo bbt-agent.exe missing in %SRC% & exit /b 2)
if not exist "%CONF%" mkdir "%CONF%"
rem a newer build on the share: stop the service to replace its files (queued events stay in %CONF%\agent)
fc /b "%SRC%bbt-agent\bbt-agent.exe" "%DEST%\bbt-agent.exe" >nul 2>&1 && goto config
sc stop bbt-agent >nul 2>&1
timeout /t 5 /nobreak >nul
robocopy "%SRC%bbt-agent" "%DEST%" /MIR /NFL /NDL /NJH /NJS /NP >nul
if errorlevel 8 (echo copy failed & exit /b 3)
:config
if exist "%SRC%devices\%COMPUTERNAME%\agent.ini" (
  robocopy "%SRC%devices\%COMPUTERNAME%" "%CONF%" /E /NFL /NDL /NJH /NJS /NP >nul
) else (
  if not exist "%CONF%\agent.ini" copy /y "%SRC%agent.ini" "%CONF%\agent.ini" >nul
  if exist "%SRC%ca.crt" copy /y "%SRC%ca.crt" "%CONF%\ca.crt" >nul
)
sc query bbt-agent >nul 2>&1 && (sc start bbt-agent >nul 2>&1 & exit /b 0)
"%DEST%\bbt-agent.exe" install --config "%CONF%\agent.ini"
exit /b %errorlevel%
